/**
 * External data (weights stored beside the .onnx file, as PyTorch does for models over 2 GB): inlined into
 * raw_data when the model is loaded from a path, so the rest of glassbox sees one self-contained ModelProto.
 */
import { DataLocation, type GraphProto, type ModelProto, type TensorProto } from './proto.js';

export type ReadExternal = (location: string) => Promise<Uint8Array>;

function tensorsOf(g: GraphProto, out: TensorProto[]): void {
  out.push(...g.initializer);
  for (const n of g.node) {
    for (const a of n.attribute) {
      if (a.t) out.push(a.t);
      out.push(...a.tensors);
      for (const sub of [a.g, ...a.graphs]) if (sub) tensorsOf(sub, out);
    }
  }
}

export function hasExternalData(model: ModelProto): boolean {
  const all: TensorProto[] = [];
  if (model.graph) tensorsOf(model.graph, all);
  return all.some((t) => t.dataLocation === DataLocation.EXTERNAL);
}

/** Reads every external tensor's bytes into its raw_data (in place on a model the caller owns). */
export async function inlineExternalData(model: ModelProto, read: ReadExternal, source = 'model'): Promise<void> {
  const all: TensorProto[] = [];
  if (model.graph) tensorsOf(model.graph, all);
  const files = new Map<string, Promise<Uint8Array>>();
  for (const t of all) {
    if (t.dataLocation !== DataLocation.EXTERNAL) continue;
    const kv = new Map(t.externalData.map((e) => [e.key, e.value]));
    const location = kv.get('location');
    if (!location) throw new Error(`${source}: tensor '${t.name}' is external but names no location`);
    if (location.includes('..') || location.startsWith('/')) {
      throw new Error(`${source}: tensor '${t.name}' points outside the model's folder ('${location}')`);
    }
    let file = files.get(location);
    if (!file) files.set(location, (file = read(location)));
    let bytes: Uint8Array;
    try {
      bytes = await file;
    } catch (e) {
      throw new Error(`${source}: cannot read external data '${location}' of tensor '${t.name}': ${(e as Error).message}`);
    }
    const offset = Number(kv.get('offset') ?? 0);
    const length = kv.has('length') ? Number(kv.get('length')) : bytes.length - offset;
    if (offset + length > bytes.length) {
      throw new Error(`${source}: external data '${location}' has ${bytes.length} bytes; tensor '${t.name}' needs bytes ${offset}..${offset + length}`);
    }
    t.rawData = bytes.slice(offset, offset + length);
    t.dataLocation = DataLocation.DEFAULT;
    t.externalData = [];
  }
}
