/**
 * KernelSHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions"): Shapley values of feature
 * groups as the weighted linear regression of v(z) = f(x on z, baseline elsewhere) on the coalitions z, with the
 * Shapley kernel π(z) = (d − 1) / (C(d, |z|) |z| (d − |z|)). Its infinite weights on the empty and full coalitions are
 * imposed exactly: φ₀ = f(baseline) and Σ φ = f(x) − f(baseline) (one coefficient is eliminated), so completeness
 * holds whatever the sample. With every coalition (2^d − 2 ≤ samples) the solution is the exact Shapley value.
 * Otherwise coalitions are sampled with the seed: a size s with probability ∝ π's total weight on size s, i.e.
 * ∝ 1 / (s (d − s)), then a uniform subset of that size, each paired with its complement, all with equal weight.
 *
 * A group's value is shared equally by its values (attributions over values sum to f(x) − f(baseline));
 * `extra.groupValues` holds the per-group values.
 *
 * @example
 * const ks = await kernelShap(model, { x }, { target: 3, featureMask: patchMask([1, 28, 28], 7), samples: 500 });
 * ks.checks[0]; // completeness, exact by construction
 */
import type { Model } from '../../../model/model.js';
import { Tensor } from '../../../runtime/tensor.js';
import { Attributor, type AttributionOptions } from '../attributor.js';
import { resolveBaseline, type Baseline } from '../baseline.js';
import { completenessCheck, type Attribution } from '../explanation.js';
import { exampleRandom } from '../seeding.js';
import { coalitions, describeBaseline, featureGroups, groupTable, positiveInteger, result, scoreCoalitions, spread } from './features.js';
import { weightedLeastSquares } from './linear.js';

export interface KernelShapOptions extends AttributionOptions {
  /** Players: an integer group id per value of one example, [1, ...] or [N, ...] (default: masks.ts `defaultWindow` patches). */
  readonly featureMask?: Tensor;
  /** The value of an absent feature (default 0). */
  readonly baseline?: Baseline;
  /** Coalitions per example besides the empty and full ones (default 2d + 2048, as the `shap` package's 'auto'); all of them when 2^d − 2 ≤ samples. */
  readonly samples?: number;
  readonly seed?: number;
  /** Largest relative completeness delta that passes (default 1e-3: float32 rounding only). */
  readonly tolerance?: number;
}

/** The Shapley kernel weight of a coalition of size s among d features (0 < s < d). */
export function shapleyKernel(d: number, s: number): number {
  let binom = 1;
  for (let k = 0; k < s; k++) binom = (binom * (d - k)) / (k + 1);
  return (d - 1) / (binom * s * (d - s));
}

/** Coalitions of one example with d features: keep flags (rows × d) and regression weights. */
function design(d: number, budget: number, rand: () => number): { keep: Uint8Array; weight: Float64Array; enumerated: boolean } {
  if (d < 2) return { keep: new Uint8Array(0), weight: new Float64Array(0), enumerated: true };
  if (d <= 30 && 2 ** d - 2 <= budget) {
    const rows = 2 ** d - 2;
    const keep = new Uint8Array(rows * d);
    const weight = new Float64Array(rows);
    for (let c = 1; c <= rows; c++) {
      let s = 0;
      for (let g = 0; g < d; g++) {
        keep[(c - 1) * d + g] = (c >> g) & 1;
        s += (c >> g) & 1;
      }
      weight[c - 1] = shapleyKernel(d, s);
    }
    return { keep, weight, enumerated: true };
  }
  const pairs = Math.max(1, Math.floor(budget / 2));
  const sizeCdf = new Float64Array(d - 1);
  for (let s = 1, acc = 0; s < d; s++) sizeCdf[s - 1] = acc += 1 / (s * (d - s));
  const keep = new Uint8Array(2 * pairs * d);
  const order = Int32Array.from({ length: d }, (_, g) => g);
  for (let p = 0; p < pairs; p++) {
    const u = rand() * sizeCdf[d - 2];
    let s = 1;
    while (s < d - 1 && sizeCdf[s - 1] <= u) s++;
    const row = keep.subarray(2 * p * d, (2 * p + 1) * d);
    const complement = keep.subarray((2 * p + 1) * d, (2 * p + 2) * d);
    for (let t = 0; t < s; t++) {
      const k = t + Math.floor(rand() * (d - t));
      [order[t], order[k]] = [order[k], order[t]];
      row[order[t]] = 1;
    }
    for (let g = 0; g < d; g++) complement[g] = 1 - row[g];
  }
  return { keep, weight: new Float64Array(2 * pairs).fill(1), enumerated: false };
}

export async function kernelShap(model: Model, inputs: Readonly<Record<string, Tensor>>, options: KernelShapOptions = {}): Promise<Attribution> {
  const started = performance.now();
  if (options.samples !== undefined) positiveInteger(options.samples, 'kernel SHAP: samples');
  const seed = options.seed ?? 0;
  const a = await Attributor.create(model, inputs, options);
  const groups = featureGroups(options.featureMask, a.rowShape, a.n, 'kernel SHAP');
  const b = resolveBaseline(options.baseline, a.x, 'kernel SHAP: baseline').data;
  const R = a.rowSize;
  const width = Math.max(0, ...groups.map((g) => g.count));

  // Rows of example i from first[i]: the empty coalition, then its design's coalitions.
  const designs = groups.map((g, i) => design(g.count, options.samples ?? 2 * g.count + 2048, exampleRandom(seed, a.x.data.subarray(i * R, (i + 1) * R))));
  const first = new Int32Array(a.n + 1);
  for (let i = 0; i < a.n; i++) first[i + 1] = first[i] + 1 + designs[i].weight.length;
  const c = coalitions(first[a.n], width);
  for (let i = 0; i < a.n; i++) {
    const d = groups[i].count;
    c.owner.fill(i, first[i], first[i + 1]);
    const { keep, weight } = designs[i];
    for (let r = 0; r < weight.length; r++) c.keep.set(keep.subarray(r * d, (r + 1) * d), (first[i] + 1 + r) * width);
  }
  const f = await scoreCoalitions(a, b, groups, c);

  const values = groups.map((g, i) => {
    const d = g.count;
    const fb = f[first[i]];
    const delta = a.scores0[i] - fb;
    const phi = new Float64Array(d);
    if (d === 1) phi[0] = delta;
    if (d < 2) return phi;
    // Eliminate φ_last = Δ − Σ_{j<last} φ_j: regress v(z) − f(b) − z_last Δ on (z_j − z_last), no intercept.
    const { keep, weight } = designs[i];
    const rows = weight.length;
    const X = new Float64Array(rows * (d - 1));
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const last = keep[r * d + d - 1];
      for (let j = 0; j < d - 1; j++) X[r * (d - 1) + j] = keep[r * d + j] - last;
      y[r] = f[first[i] + 1 + r] - fb - last * delta;
    }
    const fit = weightedLeastSquares(X, y, weight, d - 1, { intercept: false });
    phi.set(fit.coef);
    phi[d - 1] = delta - fit.coef.reduce((s, v) => s + v, 0);
    return phi;
  });
  const attr = spread(a, groups, values, true);
  const fb = groups.map((_, i) => f[first[i]]);
  const check = completenessCheck(new Tensor('float32', attr, a.x.shape), a.scores0, fb, options.tolerance ?? 1e-3);
  return result(a, 'kernel-shap', attr, started, [check], {
    seed,
    samples: designs.map((d) => d.weight.length),
    enumerated: designs.map((d) => d.enumerated),
    features: groups.map((g) => g.count),
    baseline: describeBaseline(options.baseline),
  }, { groupValues: groupTable(values), baselineScores: fb });
}
