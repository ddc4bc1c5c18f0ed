/**
 * k-means (Lloyd 1982) with k-means++ seeding (Arthur & Vassilvitskii 2007), seeded and restarted, keeping the run of
 * least inertia (sum of squared distances to the assigned centroid). Ties in distance go to the lower cluster, so a
 * seed gives one answer.
 *
 * @example
 * const { assignments } = kmeans(Float64Array.of(0, 0, 0, 1, 9, 9, 9, 10), 4, 2, 2, { seed: 1 }); // [a, a, b, b]
 */
import { mixSeed, mulberry32 } from '../../../data/datasets/random.js';

export interface KMeansResult {
  readonly assignments: Int32Array;
  /** k × d, row-major. */
  readonly centroids: Float64Array;
  readonly inertia: number;
}

export interface KMeansOptions {
  readonly seed?: number;
  /** Runs from different seedings (default 10). */
  readonly restarts?: number;
  /** Lloyd iterations per run at most (default 100). */
  readonly maxIterations?: number;
}

const dist2 = (x: Float64Array, i: number, c: Float64Array, j: number, d: number): number => {
  let s = 0;
  for (let t = 0; t < d; t++) s += (x[i * d + t] - c[j * d + t]) ** 2;
  return s;
};

function once(x: Float64Array, n: number, d: number, k: number, rand: () => number, maxIterations: number): KMeansResult {
  const c = new Float64Array(k * d);
  // k-means++: the first centre uniformly, each next one with probability ∝ squared distance to the nearest chosen.
  const first = Math.floor(rand() * n);
  c.set(x.subarray(first * d, (first + 1) * d), 0);
  const near = Float64Array.from({ length: n }, (_, i) => dist2(x, i, c, 0, d));
  for (let j = 1; j < k; j++) {
    const total = near.reduce((s, v) => s + v, 0);
    let pick = n - 1;
    if (total > 0) {
      let r = rand() * total;
      for (let i = 0; i < n; i++) if ((r -= near[i]) < 0) { pick = i; break; }
    } else pick = Math.floor(rand() * n);
    c.set(x.subarray(pick * d, (pick + 1) * d), j * d);
    for (let i = 0; i < n; i++) near[i] = Math.min(near[i], dist2(x, i, c, j, d));
  }
  const assign = new Int32Array(n).fill(-1);
  let inertia = 0;
  for (let it = 0; it < maxIterations; it++) {
    let changed = false;
    inertia = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      let bd = dist2(x, i, c, 0, d);
      for (let j = 1; j < k; j++) {
        const dj = dist2(x, i, c, j, d);
        if (dj < bd) [best, bd] = [j, dj];
      }
      if (assign[i] !== best) changed = true;
      assign[i] = best;
      inertia += bd;
    }
    if (!changed) break;
    const counts = new Int32Array(k);
    const sums = new Float64Array(k * d);
    for (let i = 0; i < n; i++) {
      counts[assign[i]]++;
      for (let t = 0; t < d; t++) sums[assign[i] * d + t] += x[i * d + t];
    }
    for (let j = 0; j < k; j++) if (counts[j] > 0) for (let t = 0; t < d; t++) c[j * d + t] = sums[j * d + t] / counts[j]; // an empty cluster keeps its centre
  }
  return { assignments: assign, centroids: c, inertia };
}

/** Clusters n points of dimension d (row-major) into k groups. */
export function kmeans(points: Float64Array, n: number, d: number, k: number, options: KMeansOptions = {}): KMeansResult {
  if (points.length !== n * d) throw new Error(`kmeans: ${points.length} values are not ${n} points of dimension ${d}`);
  if (!Number.isInteger(k) || k < 1 || k > n) throw new Error(`kmeans: k must be an integer in [1, ${n}], got ${k}`);
  const restarts = options.restarts ?? 10;
  if (!Number.isInteger(restarts) || restarts < 1) throw new Error(`kmeans: restarts must be a positive integer, got ${restarts}`);
  let best: KMeansResult | undefined;
  for (let r = 0; r < restarts; r++) {
    const run = once(points, n, d, k, mulberry32(mixSeed(options.seed ?? 0, r)), options.maxIterations ?? 100);
    if (!best || run.inertia < best.inertia) best = run;
  }
  return best!;
}
