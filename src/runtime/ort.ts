/**
 * A Runtime over any ONNX Runtime JavaScript package: onnxruntime-node and onnxruntime-web share the
 * onnxruntime-common API, so one adapter serves both and the package is passed in.
 */
import type * as Ort from 'onnxruntime-common';
import { Tensor, isDType, type DType, type DataTypeMap } from './tensor.js';
import type { Runtime, RuntimeSession, SessionOptions } from './runtime.js';

type OrtModule = Pick<typeof Ort, 'InferenceSession' | 'Tensor'>;

function toOrt(ort: OrtModule, name: string, t: Tensor): Ort.Tensor {
  return new ort.Tensor(t.dtype, t.data as Ort.Tensor.DataType, [...t.shape]);
}

function fromOrt(name: string, t: Ort.Tensor): Tensor {
  if (!isDType(t.type)) throw new Error(`output '${name}': ONNX Runtime returned a ${t.type} tensor, which glassbox does not hold`);
  let data = t.data as DataTypeMap[DType];
  // Where the platform has Float16Array, onnxruntime returns float16 as one; glassbox holds the raw half bits.
  if (t.type === 'float16' && !(data instanceof Uint16Array)) {
    const d = data as unknown as ArrayBufferView & { length: number };
    data = new Uint16Array(d.buffer, d.byteOffset, d.length);
  }
  return new Tensor(t.type as DType, data, t.dims);
}

/** Strips the runtime's boilerplate so the message leads with what went wrong. */
function runtimeMessage(e: unknown): string {
  return String((e as Error)?.message ?? e).replace(/^\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : /, '');
}

export function ortRuntime(ort: OrtModule, name: string, defaultProviders: readonly string[]): Runtime {
  return {
    name,
    async createSession(model: Uint8Array, options: SessionOptions = {}): Promise<RuntimeSession> {
      let session: Ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(model, {
          graphOptimizationLevel: options.optimization ?? 'disabled',
          ...(options.threads === undefined ? {} : { intraOpNumThreads: options.threads }),
          interOpNumThreads: 1,
          executionProviders: [...(options.executionProviders ?? defaultProviders)],
          logSeverityLevel: 4,
          ...(options.spinWait
            ? {}
            : { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }),
        });
      } catch (e) {
        throw new Error(`${name} cannot load the model: ${runtimeMessage(e)}`);
      }
      const outputSet = new Set(session.outputNames);
      return {
        inputNames: session.inputNames,
        outputNames: session.outputNames,
        async run(feeds, fetches) {
          const ortFeeds: Record<string, Ort.Tensor> = {};
          for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(ort, k, v);
          let out: Ort.InferenceSession.ReturnType;
          try {
            // Naming fetches costs onnxruntime a lookup per name; skip it when every output is fetched anyway.
            const all = !fetches || (fetches.length === session.outputNames.length && fetches.every((f) => outputSet.has(f)));
            out = all ? await session.run(ortFeeds) : await session.run(ortFeeds, [...fetches]);
          } catch (e) {
            throw new Error(`${name} failed to run the model: ${runtimeMessage(e)}`);
          }
          const result: Record<string, Tensor> = {};
          for (const [k, v] of Object.entries(out)) result[k] = fromOrt(k, v);
          return result;
        },
        release: () => session.release(),
      };
    },
  };
}
