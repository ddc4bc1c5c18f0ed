/** Checks of what a caller feeds a model, made before anything runs, each naming the culprit. */
import type { ValueInfo } from '../onnx/graph.js';
import type { Tensor } from '../runtime/tensor.js';
import { unknownNameError } from '../util/nearest.js';

function describe(shape: readonly unknown[] | undefined): string {
  return shape ? `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]` : '(unknown shape)';
}

/** Every graph input fed with the declared dtype, rank and fixed dims; no unknown names; no NaN unless allowed. */
export function validateFeeds(inputs: readonly ValueInfo[], feeds: Readonly<Record<string, Tensor>>, allowNaN = false): void {
  const names = inputs.map((i) => i.name);
  for (const k of Object.keys(feeds)) if (!names.includes(k)) throw unknownNameError('input', k, names);
  for (const inp of inputs) {
    const t = feeds[inp.name];
    if (!t) throw new Error(`missing input '${inp.name}' (${inp.dtype ?? '?'} ${describe(inp.shape)}); the model takes: ${names.join(', ')}`);
    if (inp.dtype && t.dtype !== inp.dtype) {
      throw new Error(`input '${inp.name}' must be ${inp.dtype}, got ${t.dtype}`);
    }
    if (inp.shape) {
      const bad =
        inp.shape.length !== t.rank || inp.shape.some((d, i) => typeof d === 'number' && d !== t.shape[i]);
      if (bad) throw new Error(`input '${inp.name}' must have shape ${describe(inp.shape)}, got [${t.shape.join(', ')}]`);
    }
    if (!allowNaN && (t.dtype === 'float32' || t.dtype === 'float64')) {
      const i = firstNaN(t.data as Float32Array | Float64Array);
      if (i >= 0) throw new Error(`input '${inp.name}' holds NaN at flat index ${i} (pass allowNaN to run anyway)`);
    }
  }
}

/**
 * Index of the first NaN, or -1. The fast path sums in four independent chains (one chain is bound by add latency):
 * the sum is NaN only if some element is NaN or infinities of both signs meet, and only then is the array searched.
 */
export function firstNaN(d: Float32Array | Float64Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = d.length & ~3;
  for (let i = 0; i < n; i += 4) {
    s0 += d[i];
    s1 += d[i + 1];
    s2 += d[i + 2];
    s3 += d[i + 3];
  }
  let sum = s0 + s1 + s2 + s3;
  for (let i = n; i < d.length; i++) sum += d[i];
  if (!Number.isNaN(sum)) return -1;
  for (let i = 0; i < d.length; i++) if (Number.isNaN(d[i])) return i;
  return -1;
}
