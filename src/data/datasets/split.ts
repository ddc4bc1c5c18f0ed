/**
 * Splitting a dataset into parts (train/test, with or without class stratification) and z-scoring features with the
 * statistics of the training part only, so that nothing about the test part leaks into its own normalisation.
 *
 * @example
 * const [train, test] = split(await loadIris(), [0.8, 0.2], { seed: 1, stratify: true, standardize: true });
 */

import { Tensor } from '../../runtime/tensor.js';
import { Dataset, mapInputs } from './dataset.js';
import { mulberry32, shuffleInPlace } from './random.js';

export interface SplitOptions {
  /** Seed of the random assignment (default 0). */
  readonly seed?: number;
  /** Assign at random (default true); false keeps dataset order, parts taking consecutive runs. */
  readonly shuffle?: boolean;
  /** Keep each class's share equal across parts (needs per-example labels; default false). */
  readonly stratify?: boolean;
  /** z-score every part's inputs with the mean and standard deviation of the first part (default false). */
  readonly standardize?: boolean;
}

/**
 * Parts of a dataset by fractions (summing to at most 1) or example counts (summing to at most its size).
 * Rounding goes to the earlier parts; with fractions summing to 1 every example lands in exactly one part.
 */
export function split(ds: Dataset<'float32'>, parts: readonly number[], options?: SplitOptions): Dataset<'float32'>[];
export function split<X extends 'float32' | 'int64'>(
  ds: Dataset<X>,
  parts: readonly number[],
  options?: SplitOptions & { standardize?: false },
): Dataset<X>[];
export function split(ds: Dataset, parts: readonly number[], options: SplitOptions = {}): Dataset[] {
  const { seed = 0, shuffle = true, stratify = false, standardize: z = false } = options;
  if (parts.length === 0 || parts.some((p) => !(p >= 0))) {
    throw new Error(`split ${ds.name}: parts must be non-negative numbers, got [${parts.join(', ')}]`);
  }
  const total = parts.reduce((a, b) => a + b, 0);
  const fractions = parts.every((p) => p <= 1) && total <= 1 + 1e-9;
  if (!fractions && (parts.some((p) => !Number.isInteger(p)) || total > ds.size)) {
    throw new Error(
      `split ${ds.name}: parts [${parts.join(', ')}] are neither fractions summing to ≤ 1 nor counts summing to ≤ ${ds.size}`,
    );
  }
  const shares = fractions ? parts : parts.map((p) => p / ds.size);

  let groups: Int32Array[];
  if (stratify) {
    const labels = ds.labels;
    if (labels === undefined) throw new Error(`split ${ds.name}: stratify needs a dataset with per-example labels`);
    const byClass = new Map<number, number[]>();
    for (let i = 0; i < ds.size; i++) {
      const list = byClass.get(labels[i]) ?? [];
      list.push(i);
      byClass.set(labels[i], list);
    }
    groups = [...byClass.keys()].sort((a, b) => a - b).map((c) => Int32Array.from(byClass.get(c) ?? []));
  } else {
    groups = [Int32Array.from({ length: ds.size }, (_, i) => i)];
  }

  const rand = mulberry32(seed);
  const out: number[][] = parts.map(() => []);
  for (const g of groups) {
    if (shuffle) shuffleInPlace(g, rand);
    const counts = apportion(g.length, shares, fractions ? undefined : parts);
    let at = 0;
    counts.forEach((c, p) => {
      for (let k = 0; k < c; k++) out[p].push(g[at + k]);
      at += c;
    });
  }
  // Each part keeps dataset order (locality; shuffle when batching).
  const result = out.map((ix, p) => ds.subset(Int32Array.from(ix).sort(), `${ds.name}[part ${p + 1}/${parts.length}]`));
  if (!z) return result;
  const stats = featureStats(result[0] as Dataset<'float32'>);
  return result.map((d) => standardize(d as Dataset<'float32'>, stats));
}

/** Per-input-element mean and population standard deviation (as scikit-learn's StandardScaler). */
export interface FeatureStats {
  readonly mean: Float64Array;
  readonly std: Float64Array;
}

/** Mean and standard deviation of every input element over the dataset (float64, streamed in batches). */
export function featureStats(ds: Dataset<'float32'>, batchSize = 1024): FeatureStats {
  if (ds.inputDType !== 'float32') throw new Error(`featureStats: ${ds.name} has ${ds.inputDType} inputs, not float32`);
  if (ds.size === 0) throw new Error(`featureStats: ${ds.name} is empty`);
  const f = ds.inputShape.reduce((a, b) => a * b, 1);
  const sum = new Float64Array(f);
  const sq = new Float64Array(f);
  for (const { x } of ds.batches(batchSize)) {
    const d = x.data;
    for (let i = 0; i < d.length; i++) sum[i % f] += d[i];
  }
  const mean = sum.map((s) => s / ds.size);
  for (const { x } of ds.batches(batchSize)) {
    const d = x.data;
    for (let i = 0; i < d.length; i++) {
      const e = d[i] - mean[i % f];
      sq[i % f] += e * e;
    }
  }
  return { mean, std: sq.map((s) => Math.sqrt(s / ds.size)) };
}

/** Inputs z-scored with given statistics; a constant feature (std 0) is only centred, as scikit-learn does. */
export function standardize(ds: Dataset<'float32'>, stats: FeatureStats): Dataset<'float32'> {
  const f = ds.inputShape.reduce((a, b) => a * b, 1);
  if (stats.mean.length !== f || stats.std.length !== f) {
    throw new Error(`standardize: ${ds.name} has ${f} input values per example, the statistics ${stats.mean.length}`);
  }
  const scale = stats.std.map((s) => (s > 0 ? 1 / s : 1));
  return mapInputs(
    ds,
    (x) => {
      const out = new Float32Array(x.data.length);
      for (let i = 0; i < out.length; i++) out[i] = (x.data[i] - stats.mean[i % f]) * scale[i % f];
      return new Tensor('float32', out, x.shape);
    },
    `${ds.name}[standardized]`,
  );
}

/** Example counts per part: floors of the shares, the remainder one by one to the earliest parts that still want it. */
function apportion(n: number, shares: readonly number[], exact?: readonly number[]): number[] {
  if (exact && n === exact.reduce((a, b) => a + b, 0)) return [...exact];
  const counts = shares.map((s) => Math.floor(s * n + 1e-9));
  const want = Math.round(shares.reduce((a, b) => a + b, 0) * n);
  for (let p = 0, given = counts.reduce((a, b) => a + b, 0); given < want; p = (p + 1) % counts.length) {
    if (shares[p] > 0) {
      counts[p]++;
      given++;
    }
  }
  return counts;
}
