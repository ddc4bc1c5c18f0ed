/**
 * The perturbation distributions D(z | A) of anchors (Ribeiro, Singh, Guestrin, "Anchors: High-Precision
 * Model-Agnostic Explanations", AAAI 2018): what "inputs like x that keep the anchor A" means for each kind of data.
 *
 * - Tabular: every feature is discretised into its quartile bins (the reference implementation's default); the
 *   predicates around x are the bin edges of x's bins, `petal width (cm) > 1.80` and `petal width (cm) <= 2.30`.
 *   z ~ D(· | A) is a data row drawn at random whose anchored features, where they break a predicate, are replaced
 *   by values of data rows that keep it (the reference implementation's `sample_from_train`), so the joint
 *   distribution of the other features stays that of the data.
 * - Images: x split into segments (square patches by default, or any superpixel map); a predicate is "segment k is
 *   kept"; z keeps the anchored segments and each other one with probability 1/2, the rest set to a baseline.
 *
 * @example
 * const space = tabularSpace(x, await loadIris());          // predicates of x's quartile bins
 * const z = space.sample([0, 3], 100, mulberry32(1));        // 100 rows keeping predicates 0 and 3, [100 × 4]
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { permutation } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';

export type Rand = () => number;

/** `feature <= threshold` or `feature > threshold`, on raw feature values. */
export interface TabularPredicate {
  readonly kind: 'tabular';
  readonly feature: number;
  readonly name: string;
  readonly op: '<=' | '>';
  readonly threshold: number;
  readonly text: string;
}

/** "Segment k of the image is kept as it is in x". */
export interface SegmentPredicate {
  readonly kind: 'segment';
  readonly segment: number;
  readonly text: string;
}

export type Predicate = TabularPredicate | SegmentPredicate;

export interface PerturbationSpace {
  readonly kind: 'tabular' | 'image';
  /** The instance explained, flat. */
  readonly x: Float32Array;
  /** Shape of one model input (no batch axis). */
  readonly inputShape: readonly number[];
  readonly predicates: readonly Predicate[];
  /** n perturbations z ~ D(· | anchor), flat [n, ...inputShape]; `anchor` holds predicate indices. */
  sample(anchor: readonly number[], n: number, rand: Rand): Float32Array;
  /** n perturbations z ~ D (no anchor), as which predicates each satisfies: [n, P] of 0/1. */
  satisfied(n: number, rand: Rand): Uint8Array;
  /** Real data rows (tabular), for checks on data rather than perturbations: flat [rows, F]. */
  readonly data?: { readonly rows: Float32Array; readonly count: number };
}

/** Percentile as numpy's default (linear interpolation between order statistics) of sorted values. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new Error('percentile: no values');
  const pos = (q / 100) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

/** All rows of a dataset with float32 inputs, read in batches: flat [size, F] (F = values per example). */
export function tableOf(data: Dataset<'float32'>, where: string): { rows: Float32Array; count: number; features: number } {
  if (data.inputDType !== 'float32') throw new Error(`${where}: ${data.name} must have float32 inputs, has ${data.inputDType}`);
  if (data.size === 0) throw new Error(`${where}: ${data.name} is empty`);
  const f = data.inputShape.reduce((a, b) => a * b, 1);
  const rows = new Float32Array(data.size * f);
  let at = 0;
  for (const { x } of data.batches(1024)) {
    rows.set(x.data, at);
    at += x.data.length;
  }
  return { rows, count: data.size, features: f };
}

export interface TabularSpaceOptions {
  /** Cut percentiles of every feature (default quartiles [25, 50, 75]). */
  readonly percentiles?: readonly number[];
  readonly featureNames?: readonly string[];
}

/** The quartile-bin predicates around x and the data-conditioned sampler of the reference implementation. */
export function tabularSpace(x: ArrayLike<number>, data: Dataset<'float32'>, options: TabularSpaceOptions = {}): PerturbationSpace {
  if (data.inputShape.length !== 1) throw new Error(`tabularSpace: ${data.name} has inputs [${data.inputShape.join(', ')}], not feature vectors`);
  const { rows, count, features: f } = tableOf(data, 'tabularSpace');
  if (x.length !== f) throw new Error(`tabularSpace: the instance has ${x.length} features, ${data.name} has ${f}`);
  const xs = Float32Array.from(x);
  const bad = xs.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`tabularSpace: feature ${bad} of the instance is ${xs[bad]}`);
  const names = options.featureNames ?? data.featureNames ?? Array.from({ length: f }, (_, i) => `x${i}`);
  if (names.length !== f) throw new Error(`tabularSpace: ${names.length} feature names for ${f} features`);
  const qs = options.percentiles ?? [25, 50, 75];
  if (qs.some((q) => !(q > 0 && q < 100))) throw new Error(`tabularSpace: percentiles must lie in (0, 100), got [${qs.join(', ')}]`);

  const columns = Array.from({ length: f }, (_, j) => Float64Array.from({ length: count }, (_, r) => rows[r * f + j]));
  const predicates: TabularPredicate[] = [];
  for (let j = 0; j < f; j++) {
    const sorted = columns[j].slice().sort();
    const cuts = [...new Set(qs.map((q) => Math.fround(percentile(sorted, q))))].sort((a, b) => a - b);
    // x's bin: the number of cuts below it (numpy searchsorted, side 'left'); its edges are the predicates.
    const bin = cuts.filter((c) => c < xs[j]).length;
    const add = (op: '<=' | '>', threshold: number) =>
      predicates.push({ kind: 'tabular', feature: j, name: names[j], op, threshold, text: `${names[j]} ${op} ${fmt(threshold)}` });
    if (bin > 0) add('>', cuts[bin - 1]);
    if (bin < cuts.length) add('<=', cuts[bin]);
  }

  const holds = (p: TabularPredicate, v: number) => (p.op === '>' ? v > p.threshold : v <= p.threshold);
  // Values of data rows that keep a feature's anchored interval, per interval (cached).
  const pools = new Map<string, Float64Array>();
  const poolOf = (j: number, lo: number, hi: number) => {
    const key = `${j}:${lo}:${hi}`;
    let pool = pools.get(key);
    if (!pool) pools.set(key, (pool = columns[j].filter((v) => v > lo && v <= hi)));
    return pool;
  };

  return {
    kind: 'tabular',
    x: xs,
    inputShape: [f],
    predicates,
    data: { rows, count },
    sample(anchor, n, rand) {
      const out = new Float32Array(n * f); // [n, F]
      for (let i = 0; i < n; i++) {
        const r = Math.floor(rand() * count);
        out.set(rows.subarray(r * f, (r + 1) * f), i * f);
      }
      for (const [j, [lo, hi]] of intervals(anchor, predicates)) {
        const pool = poolOf(j, lo, hi);
        for (let i = 0; i < n; i++) {
          const v = out[i * f + j];
          if (v > lo && v <= hi) continue;
          // No data row keeps the interval (a bin edge at a repeated value): uniform inside it, within the data's range.
          out[i * f + j] = pool.length > 0 ? pool[Math.floor(rand() * pool.length)] : uniformIn(lo, hi, columns[j], rand);
        }
      }
      return out;
    },
    satisfied(n, rand) {
      const p = predicates.length;
      const out = new Uint8Array(n * p); // [n, P]
      for (let i = 0; i < n; i++) {
        const r = Math.floor(rand() * count);
        predicates.forEach((q, k) => (out[i * p + k] = holds(q, rows[r * f + q.feature]) ? 1 : 0));
      }
      return out;
    },
  };
}

/** The interval (lo, hi] each anchored feature must keep. */
function intervals(anchor: readonly number[], predicates: readonly Predicate[]): Map<number, [number, number]> {
  const out = new Map<number, [number, number]>();
  for (const k of anchor) {
    const p = predicates[k];
    if (p === undefined) throw new Error(`anchor predicate ${k} does not exist (there are ${predicates.length})`);
    if (p.kind !== 'tabular') throw new Error(`anchor predicate ${k} is not a tabular predicate`);
    const [lo, hi] = out.get(p.feature) ?? [-Infinity, Infinity];
    out.set(p.feature, p.op === '>' ? [Math.max(lo, p.threshold), hi] : [lo, Math.min(hi, p.threshold)]);
  }
  return out;
}

function uniformIn(lo: number, hi: number, column: Float64Array, rand: Rand): number {
  let min = Infinity;
  let max = -Infinity;
  for (const v of column) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const a = Number.isFinite(lo) ? lo : min;
  const b = Number.isFinite(hi) ? hi : max;
  return b > a ? a + (b - a) * rand() : b;
}

export interface ImageSpaceOptions {
  /** Side of the square patches (default 7); ignored when `segments` is given. */
  readonly patch?: number;
  /** A superpixel map instead of patches: one segment id (0..S-1) per pixel, flat [H·W]. */
  readonly segments?: Int32Array;
  /** What a switched-off segment shows: a number, or a whole image like x (default 0). */
  readonly baseline?: number | Float32Array;
  /** Probability that a segment outside the anchor is kept (default 0.5). */
  readonly keep?: number;
}

/** Square patches of side `patch` over an H×W image: a segment id per pixel, row-major, patches numbered row by row. */
export function patchSegments(height: number, width: number, patch: number): Int32Array {
  if (!Number.isInteger(patch) || patch < 1) throw new Error(`patchSegments: patch must be a positive integer, got ${patch}`);
  const cols = Math.ceil(width / patch);
  return Int32Array.from({ length: height * width }, (_, i) => Math.floor(Math.floor(i / width) / patch) * cols + Math.floor((i % width) / patch));
}

/** Segments of an image x [C, H, W] (or [H, W]) switched off to a baseline. */
export function imageSpace(x: ArrayLike<number>, inputShape: readonly number[], options: ImageSpaceOptions = {}): PerturbationSpace {
  if (inputShape.length !== 3 && inputShape.length !== 2) throw new Error(`imageSpace: input shape must be [C, H, W] or [H, W], got [${inputShape.join(', ')}]`);
  const [h, w] = inputShape.slice(-2);
  const plane = h * w;
  const size = inputShape.reduce((a, b) => a * b, 1);
  if (x.length !== size) throw new Error(`imageSpace: the image has ${x.length} values, shape [${inputShape.join(', ')}] needs ${size}`);
  const xs = Float32Array.from(x);
  if (xs.some((v) => !Number.isFinite(v))) throw new Error('imageSpace: the image has a non-finite value');
  const patch = options.patch ?? 7;
  const segments = options.segments ?? patchSegments(h, w, patch);
  if (segments.length !== plane) throw new Error(`imageSpace: the segment map has ${segments.length} entries for ${h}×${w} pixels`);
  const count = Math.max(...segments) + 1;
  if (segments.some((s) => s < 0 || !Number.isInteger(s))) throw new Error('imageSpace: segment ids must be non-negative integers');
  const keep = options.keep ?? 0.5;
  if (!(keep > 0 && keep < 1)) throw new Error(`imageSpace: keep must lie in (0, 1), got ${keep}`);
  const b = options.baseline ?? 0;
  if (typeof b !== 'number' && b.length !== size) throw new Error(`imageSpace: the baseline image has ${b.length} values, x has ${size}`);
  const baseline = typeof b === 'number' ? new Float32Array(size).fill(b) : b;
  const cols = Math.ceil(w / patch);
  const predicates: SegmentPredicate[] = Array.from({ length: count }, (_, k) => ({
    kind: 'segment',
    segment: k,
    text: options.segments ? `segment ${k} kept` : `patch(r${Math.floor(k / cols)},c${k % cols}) kept`,
  }));
  const masks = (n: number, anchor: readonly number[], rand: Rand) => {
    const on = new Uint8Array(n * count); // [n, S]
    for (let i = 0; i < n * count; i++) on[i] = rand() < keep ? 1 : 0;
    for (const k of anchor) {
      if (predicates[k] === undefined) throw new Error(`anchor predicate ${k} does not exist (there are ${count} segments)`);
      for (let i = 0; i < n; i++) on[i * count + k] = 1;
    }
    return on;
  };
  return {
    kind: 'image',
    x: xs,
    inputShape,
    predicates,
    sample(anchor, n, rand) {
      const on = masks(n, anchor, rand);
      const out = new Float32Array(n * size); // [n, C, H, W]
      for (let i = 0; i < n; i++) {
        for (let v = 0; v < size; v++) out[i * size + v] = on[i * count + segments[v % plane]] ? xs[v] : baseline[v];
      }
      return out;
    },
    satisfied: (n, rand) => masks(n, [], rand),
  };
}

/** Predicted classes (argmax of the first output, scores [N, classes]) of flat inputs [n, ...shape], one model call. */
export async function predictClasses(model: Model, flat: Float32Array, inputShape: readonly number[]): Promise<Int32Array> {
  const size = inputShape.reduce((a, b) => a * b, 1);
  const n = flat.length / size;
  const out = (await model.run({ [model.inputs[0].name]: new Tensor('float32', flat, [n, ...inputShape]) })).outputs[model.outputs[0].name];
  if (out.shape.length !== 2 || out.shape[0] !== n) throw new Error(`the model's output must be scores [N, classes], got [${out.shape.join(', ')}]`);
  const c = out.shape[1];
  const d = out.data as Float32Array;
  return Int32Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let j = 1; j < c; j++) if (d[i * c + j] > d[i * c + best]) best = j;
    return best;
  });
}

/**
 * The data a counterfactual is measured against: feature scales (median absolute deviation, as Wachter et al.; the
 * standard deviation where the MAD is 0, else 1), ranges, the model's class of every row, nearest rows by
 * MAD-weighted L1 distance, and how far from the data a point lies compared with the data's own rows.
 */
export interface Reference {
  readonly rows: Float32Array;
  readonly count: number;
  readonly features: number;
  readonly mad: Float64Array;
  readonly min: Float64Array;
  readonly max: Float64Array;
  readonly predicted: Int32Array;
  /** The nearest row the model gives a wanted class, with its distance. */
  nearest(x: Float32Array, wanted: (cls: number) => boolean): { row: number; distance: number; x: Float32Array } | undefined;
  /** x's distance to its nearest row (rows equal to `skip` left out) against the rows' own leave-one-out nearest distances. */
  outlierCheck(x: Float32Array, skip?: Float32Array): Check;
}

/** Reference statistics of `data` (at most `max` rows, a seeded subset beyond) for `model`. */
export async function referenceOf(model: Model, data: Dataset<'float32'>, max: number): Promise<Reference> {
  if (!Number.isInteger(max) || max < 2) throw new Error(`reference data: maxReference must be an integer ≥ 2, got ${max}`);
  const use = data.size > max ? data.subset(permutation(data.size, 0).slice(0, max).sort(), `${data.name}[reference]`) : data;
  const { rows, count, features: f } = tableOf(use, 'reference data');
  const mad = new Float64Array(f);
  const min = new Float64Array(f).fill(Infinity);
  const max_ = new Float64Array(f).fill(-Infinity);
  for (let j = 0; j < f; j++) {
    const col = Float64Array.from({ length: count }, (_, r) => rows[r * f + j]).sort();
    min[j] = col[0];
    max_[j] = col[count - 1];
    const med = percentile(col, 50);
    const m = percentile(col.map((v) => Math.abs(v - med)).sort(), 50);
    const mean = col.reduce((a, b) => a + b, 0) / count;
    const sd = Math.sqrt(col.reduce((a, b) => a + (b - mean) ** 2, 0) / count);
    mad[j] = m > 0 ? m : sd > 0 ? sd : 1;
  }
  const predicted = new Int32Array(count);
  for (let s = 0; s < count; s += 1024) {
    const e = Math.min(count, s + 1024);
    predicted.set(await predictClasses(model, rows.slice(s * f, e * f), data.inputShape), s);
  }
  const dist = (a: ArrayLike<number>, ai: number, r: number) => {
    let d = 0;
    for (let j = 0; j < f; j++) d += Math.abs(a[ai + j] - rows[r * f + j]) / mad[j];
    return d;
  };
  let own: Float64Array | undefined; // leave-one-out nearest distances, computed once on demand
  return {
    rows,
    count,
    features: f,
    mad,
    min,
    max: max_,
    predicted,
    nearest(x, wanted) {
      let best: { row: number; distance: number } | undefined;
      for (let r = 0; r < count; r++) {
        if (!wanted(predicted[r])) continue;
        const d = dist(x, 0, r);
        if (!best || d < best.distance) best = { row: r, distance: d };
      }
      return best && { ...best, x: rows.slice(best.row * f, (best.row + 1) * f) };
    },
    outlierCheck(x, skip) {
      own ??= Float64Array.from({ length: count }, (_, i) => {
        let m = Infinity;
        for (let r = 0; r < count; r++) if (r !== i) m = Math.min(m, dist(rows, i * f, r));
        return m;
      });
      let mine = Infinity;
      for (let r = 0; r < count; r++) if (!skip || dist(skip, 0, r) > 0) mine = Math.min(mine, dist(x, 0, r));
      const p95 = percentile(Float64Array.from(own).sort(), 95);
      return {
        name: 'plausibility: distance to the data',
        value: mine,
        passed: mine <= p95,
        detail: `MAD-weighted L1 distance to the nearest data row${skip ? ' other than x' : ''} ${mine.toFixed(4)}; passes at or below the 95th percentile of the data rows' own nearest-neighbour distances (${p95.toFixed(4)})`,
      };
    },
  };
}

/** A threshold as printed in a rule: 4 significant digits. */
export function fmt(v: number): string {
  return Number(v.toPrecision(4)).toString();
}
