/**
 * Running a gradient graph over a batch split to the memory budget: gradients of batch-major values (inputs,
 * sites) are joined along axis 0, gradients of weights are summed over the calls, since L = sum(of ⊙ seed)
 * is a sum over rows.
 */
import type { RuleTable } from '../autodiff/types.js';
import { batchRows } from '../runtime/batch.js';
import type { RuntimeSession } from '../runtime/runtime.js';
import { concatRows, sliceRows, Tensor } from '../runtime/tensor.js';

/** What every batched call takes: a memory budget, NaN policy, progress and cancellation. */
export interface CallOptions {
  /** Memory budget of one runtime call in bytes (default: the model's). */
  readonly maxBatchBytes?: number;
  readonly allowNaN?: boolean;
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

export interface GradOptions extends CallOptions {
  /** The value differentiated (site, output); default: the first output. */
  readonly of?: string;
  /** Inputs, sites or weights to differentiate with respect to. */
  readonly wrt: readonly string[];
  /**
   * Weights of `of` in the scalar L = sum(of ⊙ seed); default: ones. 'predicted': the one-hot of each row's predicted
   * class (first argmax over the last axis; at the last position of [N, T, C]), computed in the same run.
   */
  readonly seed?: Tensor | 'predicted';
  /** Sites whose forward values to return too (from the same run). */
  readonly capture?: readonly string[];
  /**
   * ONNX Runtime's graph optimisation for this gradient graph (default: the model's, at most 'basic'). 'all' adds
   * layout transforms (blocked NCHWc convolutions) that make convolutional gradients faster; results may then differ
   * from the default's in the last bits.
   */
  readonly optimization?: 'all';
  /** A replacement VJP rule table (guided backprop, LRP…) and a name that keys its compiled graphs. */
  readonly rules?: RuleTable;
  readonly rulesName?: string;
}

export interface GradResult {
  readonly outputs: Record<string, Tensor>;
  /** Gradients by the names asked for in `wrt`. */
  readonly grads: Record<string, Tensor>;
  /** Forward values of the sites asked for in `capture`, by those names. */
  readonly captures: Record<string, Tensor>;
}

export function onesLike(dtype: Tensor['dtype'], shape: readonly number[]): Tensor {
  const out = Tensor.zeros(dtype, shape);
  (out.data as Float32Array).fill(1);
  return out;
}

export interface GradPlan {
  readonly session: RuntimeSession;
  readonly feeds: Readonly<Record<string, Tensor>>;
  /** Feeds split with the batch (the model's batch inputs and the seed). */
  readonly batched: ReadonlySet<string>;
  readonly rowsPerCall: number;
  /** Output names to fetch; those in `summed` add up over calls, the rest are joined. */
  readonly fetches: readonly string[];
  readonly summed: ReadonlySet<string>;
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

export async function runGradBatched(p: GradPlan): Promise<Record<string, Tensor>> {
  const rows = batchRows(p.feeds, p.batched);
  const step = Math.max(1, Math.floor(p.rowsPerCall));
  if (rows <= step) return p.session.run(p.feeds, p.fetches);
  const joined: Record<string, Tensor[]> = {};
  const sums: Record<string, Float64Array> = {};
  const first: Record<string, Tensor> = {};
  for (let start = 0; start < rows; start += step) {
    p.signal?.throwIfAborted();
    const end = Math.min(rows, start + step);
    const chunk: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(p.feeds)) chunk[k] = p.batched.has(k) ? sliceRows(v, start, end) : v;
    const out = await p.session.run(chunk, p.fetches);
    for (const f of p.fetches) {
      const t = out[f];
      first[f] ??= t;
      if (p.summed.has(f)) {
        // Accumulate in float64: many chunks of float32 partial sums would drift.
        const acc = (sums[f] ??= new Float64Array(t.size));
        const d = t.data as Float32Array;
        for (let i = 0; i < acc.length; i++) acc[i] += d[i];
      } else (joined[f] ??= []).push(t);
    }
    p.onProgress?.(end, rows);
  }
  const result: Record<string, Tensor> = {};
  for (const f of p.fetches) {
    if (p.summed.has(f)) {
      const t = first[f];
      result[f] = new Tensor(t.dtype, (t.dtype === 'float64' ? Float64Array : Float32Array).from(sums[f]) as Float32Array, t.shape);
    } else result[f] = concatRows(joined[f]);
  }
  return result;
}
