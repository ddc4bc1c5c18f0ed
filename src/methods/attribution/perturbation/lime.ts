/**
 * LIME (Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?"): a linear surrogate g(z) = c + β·z fitted to the
 * model on perturbations of one example, over binary interpretable features z (the groups of a feature mask: z_g = 1
 * keeps group g's values, z_g = 0 takes the baseline's), weighted by proximity π(z) = exp(−D(z, 1)² / σ²). Each value's
 * attribution is its group's coefficient β_g (every value of a group gets the whole coefficient).
 *
 * Choices, after the paper and the `lime` package: sample 0 is the example itself; each other sample removes a number
 * of features drawn uniformly from 1…d, chosen uniformly; D is the cosine distance to the all-ones vector (1 for the
 * empty coalition); σ = 0.75·√d, the package's default kernel width (it is tuned for its tabular distances: with
 * cosine distances ≤ 1 it weighs samples nearly uniformly — pass `kernelWidth: 0.25`, the package's image default,
 * for a more local fit). The surrogate is ridge with α = 1 (the package's default) or the lasso with α = 0.01 by
 * coordinate descent. The `fidelity` check is the weighted R² of the surrogate on its own samples.
 *
 * @example
 * const mask = superpixels(image, { segments: 50 });
 * const e = await lime(model, { x: image.reshape([1, ...image.shape]) }, { featureMask: mask, samples: 1000, seed: 7 });
 * e.extra?.coefficients; // [1, d] surrogate weights; e.checks[0] is the fidelity (weighted R²)
 */
import type { Model } from '../../../model/model.js';
import type { Tensor } from '../../../runtime/tensor.js';
import { Attributor, type AttributionOptions } from '../attributor.js';
import { resolveBaseline, type Baseline } from '../baseline.js';
import type { Attribution } from '../explanation.js';
import { exampleRandom } from '../seeding.js';
import { coalitions, describeBaseline, featureGroups, groupTable, positiveInteger, result, scoreCoalitions, spread } from './features.js';
import { weightedLasso, weightedLeastSquares, weightedR2 } from './linear.js';

export interface LimeOptions extends AttributionOptions {
  /** Interpretable features: an integer group id per value of one example, [1, ...] or [N, ...] (default: masks.ts `defaultWindow` patches). */
  readonly featureMask?: Tensor;
  /** What removed features become (default 0). */
  readonly baseline?: Baseline;
  /** Perturbed samples per example, the example itself included (default 1000, the package's image default). */
  readonly samples?: number;
  readonly seed?: number;
  /** σ of the proximity kernel on cosine distance (default 0.75·√d). */
  readonly kernelWidth?: number;
  /** 'ridge' (default) or 'lasso'. */
  readonly surrogate?: 'ridge' | 'lasso';
  /** Penalty of the surrogate (default 1 for ridge, 0.01 for the lasso). */
  readonly alpha?: number;
}

const SURROGATES = { ridge: weightedLeastSquares, lasso: weightedLasso } as const satisfies Record<string, typeof weightedLeastSquares>;

export async function lime(model: Model, inputs: Readonly<Record<string, Tensor>>, options: LimeOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const S = positiveInteger(options.samples ?? 1000, 'lime: samples');
  const seed = options.seed ?? 0;
  const kind = options.surrogate ?? 'ridge';
  if (!(kind in SURROGATES)) throw new Error(`lime: surrogate must be 'ridge' or 'lasso', got '${String(kind)}'`);
  const alpha = options.alpha ?? (kind === 'ridge' ? 1 : 0.01);
  if (!(alpha >= 0) || !Number.isFinite(alpha)) throw new Error(`lime: alpha must be a finite number ≥ 0, got ${alpha}`);
  if (options.kernelWidth !== undefined && !(options.kernelWidth > 0)) throw new Error(`lime: kernelWidth must be positive, got ${options.kernelWidth}`);
  const a = await Attributor.create(model, inputs, options);
  const groups = featureGroups(options.featureMask, a.rowShape, a.n, 'lime');
  const b = resolveBaseline(options.baseline, a.x, 'lime: baseline').data;
  const R = a.rowSize;
  const width = Math.max(0, ...groups.map((g) => g.count));

  // Row i·S + s is sample s of example i; drawn up front from the example's own stream (batch- and chunk-invariant).
  const c = coalitions(a.n * S, width);
  for (let i = 0; i < a.n; i++) {
    const d = groups[i].count;
    const rand = exampleRandom(seed, a.x.data.subarray(i * R, (i + 1) * R));
    const order = Int32Array.from({ length: d }, (_, g) => g);
    for (let s = 0; s < S; s++) {
      const r = i * S + s;
      c.owner[r] = i;
      c.keep.fill(1, r * width, r * width + d);
      if (s === 0) continue;
      const removed = 1 + Math.floor(rand() * d);
      for (let t = 0; t < removed; t++) {
        const u = t + Math.floor(rand() * (d - t));
        [order[t], order[u]] = [order[u], order[t]];
        c.keep[r * width + order[t]] = 0;
      }
    }
  }
  const f = await scoreCoalitions(a, b, groups, c);

  const coefficients: Float64Array[] = [];
  const intercepts: number[] = [];
  const fidelity: number[] = [];
  const widths: number[] = [];
  for (let i = 0; i < a.n; i++) {
    const d = groups[i].count;
    const sigma = options.kernelWidth ?? 0.75 * Math.sqrt(d);
    const Z = new Float64Array(S * d);
    const w = new Float64Array(S);
    for (let s = 0; s < S; s++) {
      let kept = 0;
      for (let g = 0; g < d; g++) {
        Z[s * d + g] = c.keep[(i * S + s) * width + g];
        kept += Z[s * d + g];
      }
      const D = kept === 0 ? 1 : 1 - Math.sqrt(kept / d); // cosine distance of a 0/1 vector to the all-ones vector
      w[s] = Math.exp(-(D * D) / (sigma * sigma));
    }
    const y = Float64Array.from(f.subarray(i * S, (i + 1) * S));
    const fit = SURROGATES[kind](Z, y, w, d, { alpha });
    coefficients.push(fit.coef);
    intercepts.push(fit.intercept);
    fidelity.push(weightedR2(Z, y, w, d, fit));
    widths.push(sigma);
  }
  const check = {
    name: 'fidelity',
    value: fidelity,
    detail: `weighted R² of the ${kind} surrogate on its ${S} samples per example (1: the surrogate reproduces the model there)`,
  };
  return result(a, 'lime', spread(a, groups, coefficients, false), started, [check], {
    samples: S,
    seed,
    surrogate: kind,
    alpha,
    kernelWidth: widths,
    features: groups.map((g) => g.count),
    baseline: describeBaseline(options.baseline),
  }, { coefficients: groupTable(coefficients), intercept: intercepts });
}
