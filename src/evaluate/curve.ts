/**
 * Perturbation curves, the core of deletion/insertion (Petsiuk et al. 2018) and MoRF/LeRF pixel flipping (Samek et
 * al. 2017): features (values, pixels, patches or any mask's groups) are ranked by their summed attribution; point p
 * of an example's curve moves its first `counts[p]` ranked features from a start row to another row (the image to a
 * substrate for deletion, the substrate to the image for insertion) and scores it. All points of all examples are
 * rows of a few large runtime calls (`Attributor.scores`).
 *
 * @example
 * const groups = featureGroups([1, 28, 28], { patch: [4, 4] }); // 49 patches, channels together
 * const order = rankGroups(attr, groups, n, 'descending');
 * const curve = await perturbationCurve(a, { start: x, other: blurred, groups, order, counts: [0, 1, 2, 49] });
 */
import type { Attributor } from '../methods/attribution/attributor.js';
import { featureGroups as maskGroups } from '../methods/attribution/perturbation/features.js';
import { patchMask } from '../methods/attribution/perturbation/masks.js';
import type { Tensor } from '../runtime/tensor.js';

/** A partition of one example's values into G features: members of feature g are index[start[g]..start[g+1]). */
export interface Groups {
  readonly count: number;
  readonly start: Int32Array;
  readonly index: Int32Array;
  /** Group id of each value of a row. */
  readonly ids: Int32Array;
}

export interface GroupSpec {
  /** Patch extent over the last `patch.length` axes of one example; the earlier axes (channels) move together. */
  readonly patch?: readonly number[];
  /** An integer feature id per value of one example ([...] or [1, ...]); ids need not be contiguous. */
  readonly featureMask?: Tensor;
}

/** The features of one example of shape `rowShape`, from a mask or a patch grid (the perturbation methods' own). */
export function featureGroups(rowShape: readonly number[], spec: GroupSpec, metric = 'evaluate'): Groups {
  const mask = spec.featureMask ?? patchMask(rowShape, perAxis(rowShape, spec.patch ?? rowShape.map(() => 1), metric));
  const [g] = maskGroups(mask, rowShape, 1, metric);
  return fromIds(g.index, g.count);
}

/** A patch over the trailing axes as one size per axis: the leading axes (channels) whole, sizes capped at the axis. */
function perAxis(rowShape: readonly number[], patch: readonly number[], metric: string): number[] {
  const k = patch.length;
  if (k < 1 || k > rowShape.length) throw new Error(`${metric}: patch [${patch.join(', ')}] must cover 1 to ${rowShape.length} trailing axes of an example [${rowShape.join(', ')}]`);
  patch.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 1) throw new Error(`${metric}: patch size ${i} must be a positive integer, got ${p}`);
  });
  const lead = rowShape.length - k;
  return rowShape.map((d, i) => (i < lead ? d : Math.min(d, patch[i - lead])));
}

function fromIds(ids: Int32Array, count: number): Groups {
  const start = new Int32Array(count + 1);
  for (const g of ids) start[g + 1]++;
  for (let g = 0; g < count; g++) start[g + 1] += start[g];
  const fill = start.slice(0, count);
  const index = new Int32Array(ids.length);
  ids.forEach((g, j) => (index[fill[g]++] = j));
  return { count, start, index, ids };
}

/**
 * Each example's features ordered by summed attribution ([N·G]): most important first ('descending', ties by
 * feature id) or least important first ('ascending').
 */
export function rankGroups(attributions: Float32Array, groups: Groups, n: number, direction: 'descending' | 'ascending', abs = false): Int32Array {
  const R = groups.ids.length;
  const G = groups.count;
  const order = new Int32Array(n * G);
  const score = new Float64Array(G);
  for (let i = 0; i < n; i++) {
    score.fill(0);
    for (let j = 0; j < R; j++) {
      const v = attributions[i * R + j];
      score[groups.ids[j]] += abs ? Math.abs(v) : v;
    }
    const sign = direction === 'descending' ? -1 : 1;
    const ids = Array.from({ length: G }, (_, g) => g).sort((a, b) => sign * (score[a] - score[b]) || a - b);
    order.set(ids, i * G);
  }
  return order;
}

export interface CurveSpec {
  /** Rows the curve starts from and values the ranked features take, [N·R] each. */
  readonly start: Float32Array;
  readonly other: Float32Array;
  readonly groups: Groups;
  /** [N·G] ranked features of each example (rankGroups). */
  readonly order: Int32Array;
  /** Features moved at each point of the curve (non-decreasing). */
  readonly counts: readonly number[];
}

/** Scores of every point of every example's curve, [N][P]. */
export async function perturbationCurve(a: Attributor, spec: CurveSpec): Promise<number[][]> {
  const { start, other, groups, order, counts } = spec;
  const R = a.rowSize;
  const P = counts.length;
  const G = groups.count;
  const scores = await a.scores(a.n * P, (s, e) => {
    const rows = new Float32Array((e - s) * R); // [rows, ...]: point r % P of example ⌊r / P⌋
    const owner = new Int32Array(e - s);
    for (let r = s; r < e; r++) {
      const i = Math.floor(r / P);
      const off = (r - s) * R;
      owner[r - s] = i;
      rows.set(start.subarray(i * R, (i + 1) * R), off);
      for (let q = 0; q < counts[r % P]; q++) {
        const g = order[i * G + q];
        for (let m = groups.start[g]; m < groups.start[g + 1]; m++) {
          const j = groups.index[m];
          rows[off + j] = other[i * R + j];
        }
      }
    }
    return { rows, owner };
  });
  return Array.from({ length: a.n }, (_, i) => Array.from(scores.subarray(i * P, (i + 1) * P)));
}

/** Area under y(x) by the trapezoid rule. */
export function trapezoid(x: readonly number[], y: readonly number[]): number {
  let s = 0;
  for (let i = 0; i + 1 < x.length; i++) s += ((x[i + 1] - x[i]) * (y[i] + y[i + 1])) / 2;
  return s;
}

/** The default features of an example: pixels (channels together) for images [C, H, W], else single values. */
export function defaultPatch(rowShape: readonly number[]): number[] {
  return rowShape.length >= 3 ? [1, 1] : rowShape.map(() => 1);
}
