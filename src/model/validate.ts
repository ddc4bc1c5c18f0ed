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
      const d = t.data as Float32Array;
      for (let i = 0; i < d.length; i++) {
        if (Number.isNaN(d[i])) throw new Error(`input '${inp.name}' holds NaN at flat index ${i} (pass allowNaN to run anyway)`);
      }
    }
  }
}
