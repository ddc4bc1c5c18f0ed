/**
 * Mean-over-the-batch ablations when a batch is split across runtime calls: each call would average its own rows,
 * so the whole batch's mean of each such site is computed first (in order, each under the interventions before
 * it) and the intervention becomes a replacement by that mean.
 */
import { Tensor, sizeOf } from '../runtime/tensor.js';
import type { Resolved } from './interventions.js';

export async function batchMeans(
  resolved: readonly Resolved[],
  capture: (before: readonly Resolved[], site: string) => Promise<Tensor>,
): Promise<Resolved[]> {
  const out: Resolved[] = [];
  for (const r of resolved) {
    if (r.kind !== 'batchMean') {
      out.push(r);
      continue;
    }
    const v = await capture(out, r.site.value);
    out.push({ ...r, kind: 'where', operand: meanOverRows(v, r.site.name) });
  }
  return out;
}

function meanOverRows(t: Tensor, site: string): Tensor {
  if (t.dtype !== 'float32' && t.dtype !== 'float64') throw new Error(`mean on '${site}': cannot average a ${t.dtype} site`);
  const rows = t.shape[0];
  const row = sizeOf(t.shape.slice(1));
  const acc = new Float64Array(row);
  const d = t.data as Float32Array;
  for (let i = 0; i < rows; i++) for (let j = 0; j < row; j++) acc[j] += d[i * row + j];
  const mean = t.dtype === 'float32' ? new Float32Array(row) : new Float64Array(row);
  for (let j = 0; j < row; j++) mean[j] = acc[j] / rows;
  return new Tensor(t.dtype, mean, [1, ...t.shape.slice(1)]);
}
