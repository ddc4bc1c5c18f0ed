/**
 * What the mask-based perturbation methods share: the feature groups of each example (from a feature mask, or the
 * default patches of masks.ts), the scores of coalitions — variants that keep the example's values in some groups
 * and take the baseline's in the others — batched through `Attributor.scores`, and the assembly of the result.
 *
 * @example
 * const groups = featureGroups(mask, a.rowShape, a.n, 'lime');
 * const c = coalitions(a.n, width);                    // rows × width keep flags, owner per row
 * const f = await scoreCoalitions(a, baseline, groups, c);
 */
import { Tensor, sizeOf } from '../../../runtime/tensor.js';
import { attributionResult, type Attributor } from '../attributor.js';
import { describeBaseline } from '../baseline.js';
import type { Attribution, Check } from '../explanation.js';
import { defaultWindow, patchMask } from './masks.js';

/** The features of one example: the group (0…count−1) of each of its values, in ascending order of mask id. */
export interface FeatureGroups {
  readonly index: Int32Array;
  /** The mask id of each group. */
  readonly ids: readonly number[];
  /** Values per group. */
  readonly sizes: Int32Array;
  readonly count: number;
}

const NUMERIC = new Set(['float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64']);

/**
 * The groups of each of `n` examples of shape `rowShape` from a mask of one example's shape, [1, ...] or [N, ...]; an
 * axis of size 1 is broadcast (a [1, H, W] mask for [C, H, W] examples groups all channels). No mask: the default
 * features (defaultWindow's patches).
 */
export function featureGroups(mask: Tensor | undefined, rowShape: readonly number[], n: number, what: string): FeatureGroups[] {
  const m = mask ?? (rowShape.length === 0 ? Tensor.zeros('int32', []) : patchMask(rowShape, defaultWindow(rowShape)));
  if (!NUMERIC.has(m.dtype)) throw new Error(`${what}: featureMask must hold integer group ids, got dtype ${m.dtype}`);
  const rank = rowShape.length;
  const batched = m.rank === rank + 1;
  const own = batched ? m.shape.slice(1) : m.shape;
  const fits = (m.rank === rank || (batched && (m.shape[0] === 1 || m.shape[0] === n))) && own.every((d, k) => d === rowShape[k] || d === 1);
  if (!fits) {
    throw new Error(`${what}: featureMask [${m.shape.join(', ')}] fits neither one example [${rowShape.join(', ')}] nor the batch [${n}, ${rowShape.join(', ')}] (axes of size 1 broadcast)`);
  }
  const per = batched ? m.shape[0] : 1;
  const maskRow = sizeOf(own);
  const values = Array.from(m.data as ArrayLike<number | bigint>, Number);
  values.forEach((v, i) => {
    if (!Number.isSafeInteger(v)) throw new Error(`${what}: featureMask value ${v} at index ${i} is not an integer group id`);
  });
  // Flat index of the mask value of each value of an example (stride 0 on broadcast axes).
  const strides = own.map((_, k) => (own[k] === 1 ? 0 : sizeOf(own.slice(k + 1))));
  const R = sizeOf(rowShape);
  const at = new Int32Array(R);
  const idx = new Array<number>(rank).fill(0);
  for (let j = 0; j < R; j++) {
    at[j] = idx.reduce((s, v, k) => s + v * strides[k], 0);
    for (let k = rank - 1; k >= 0 && ++idx[k] === rowShape[k]; k--) idx[k] = 0;
  }
  const groupsOf = (e: number): FeatureGroups => {
    const raw = Array.from(at, (p) => values[e * maskRow + p]);
    const ids = [...new Set(raw)].sort((a, b) => a - b);
    const position = new Map(ids.map((id, g) => [id, g]));
    const index = Int32Array.from(raw, (v) => position.get(v)!);
    const sizes = new Int32Array(ids.length);
    for (const g of index) sizes[g]++;
    return { index, ids, sizes, count: ids.length };
  };
  if (per === 1) return new Array<FeatureGroups>(n).fill(groupsOf(0));
  return Array.from({ length: n }, (_, e) => groupsOf(e));
}

/** Variant rows as coalitions: row r keeps example owner[r]'s values in the groups g with keep[r·width + g] = 1. */
export interface Coalitions {
  readonly owner: Int32Array;
  readonly keep: Uint8Array;
  readonly width: number;
}

export const coalitions = (rows: number, width: number): Coalitions => ({ owner: new Int32Array(rows), keep: new Uint8Array(rows * width), width });

/** f of every coalition row, all examples in the same few runtime calls. */
export function scoreCoalitions(a: Attributor, baseline: Float32Array, groups: readonly FeatureGroups[], c: Coalitions): Promise<Float32Array> {
  const R = a.rowSize;
  const x = a.x.data;
  return a.scores(c.owner.length, (start, end) => {
    const rows = new Float32Array((end - start) * R);
    for (let r = start; r < end; r++) {
      const i = c.owner[r];
      const g = groups[i].index;
      const o = (r - start) * R;
      for (let j = 0; j < R; j++) rows[o + j] = c.keep[r * c.width + g[j]] ? x[i * R + j] : baseline[i * R + j];
    }
    return { rows, owner: c.owner.slice(start, end) };
  });
}

/** Per-group values [N, max groups] (zero-padded) as one tensor, for `extra`. */
export function groupTable(values: readonly Float64Array[]): Tensor<'float32'> {
  const width = Math.max(0, ...values.map((v) => v.length));
  const out = new Float32Array(values.length * width);
  values.forEach((v, i) => out.set(v, i * width));
  return new Tensor('float32', out, [values.length, width]);
}

/** Each value gets its group's value (`share`: divided by the group's size, so the values sum to the group's). */
export function spread(a: Attributor, groups: readonly FeatureGroups[], perGroup: readonly ArrayLike<number>[], share: boolean): Float32Array {
  const R = a.rowSize;
  const out = new Float32Array(a.n * R);
  for (let i = 0; i < a.n; i++) {
    const { index, sizes } = groups[i];
    for (let j = 0; j < R; j++) out[i * R + j] = share ? perGroup[i][index[j]] / sizes[index[j]] : perGroup[i][index[j]];
  }
  return out;
}

export function result(a: Attributor, method: string, attributions: Float32Array, started: number, checks: Check[], params: Record<string, unknown>, extra?: Attribution['extra']): Attribution {
  return attributionResult(a, { method, attributions, started, checks, params, extra });
}

export { describeBaseline };

export function positiveInteger(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${what} must be a positive integer, got ${v}`);
  return v;
}
