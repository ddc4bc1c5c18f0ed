/**
 * Completeness, or summation to delta (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks";
 * Shrikumar et al. 2017, "Learning Important Features Through Propagating Activation Differences"): the attributions
 * of an example should sum to f(x) − f(baseline). Any attribution can be measured, given the baseline it claims to
 * explain the difference from; `values` are |Σ φ − (f(x) − f(baseline))| per example (lower is better) and the check
 * passes when the worst one relative to max(1, |f(x) − f(baseline)|) is within the tolerance.
 *
 * @example
 * const ig = await integratedGradients(model, { x }, { target: 3, baseline: 'blur' });
 * const c = await completenessOf(model, { x }, ig, { baseline: 'blur' }); // f(blurred x) scored by the model
 * completeness(ig, fb).checks[0].passed;                                   // or with f(baseline) at hand
 */
import { Attributor } from '../methods/attribution/attributor.js';
import { resolveBaseline, type Baseline } from '../methods/attribution/baseline.js';
import { completenessCheck, sumPerExample, type Attribution } from '../methods/attribution/explanation.js';
import { describeBaseline } from '../methods/attribution/baseline.js';
import type { Model } from '../model/model.js';
import { checkAttributionShape, mean, ownRows, targetOf, type Evaluation, type Inputs, type MetricBaseOptions } from './evaluation.js';

export interface CompletenessOptions extends MetricBaseOptions {
  /** The baseline the attribution explains the difference from (default zero). */
  readonly baseline?: Baseline;
  /** Largest relative |delta| that passes (default 0.05). */
  readonly tolerance?: number;
}

/** Summation to delta of `attribution`, given f(baseline) of each example. */
export function completeness(attribution: Attribution, baselineScores: ArrayLike<number>, options: { readonly tolerance?: number; readonly baseline?: string } = {}): Evaluation {
  const started = performance.now();
  const n = attribution.scores.length;
  if (baselineScores.length !== n) throw new Error(`completeness: ${baselineScores.length} baseline scores for ${n} examples of the ${attribution.method} attribution`);
  for (let i = 0; i < n; i++) if (!Number.isFinite(baselineScores[i])) throw new Error(`completeness: f(baseline) of example ${i} is ${baselineScores[i]}`);
  const tolerance = options.tolerance ?? 0.05;
  if (!(tolerance >= 0)) throw new Error(`completeness: tolerance must be ≥ 0, got ${tolerance}`);
  const check = completenessCheck(attribution.attributions, attribution.scores, baselineScores, tolerance);
  const deltas = check.value as readonly number[];
  const sums = sumPerExample(attribution.attributions);
  const values = deltas.map(Math.abs);
  return {
    metric: 'completeness',
    method: attribution.method,
    values,
    mean: mean(values),
    higherIsBetter: false,
    checks: [check],
    params: { tolerance, baseline: options.baseline ?? 'given' },
    extra: { delta: deltas, sum: Array.from(sums), scoreDifference: Array.from({ length: n }, (_, i) => attribution.scores[i] - baselineScores[i]) },
    ms: performance.now() - started,
  };
}

/** Summation to delta, with f(baseline) scored by the model for the attribution's own target. */
export async function completenessOf(model: Model, inputs: Inputs, attribution: Attribution, options: CompletenessOptions = {}): Promise<Evaluation> {
  const started = performance.now();
  const a = await Attributor.create(model, inputs, { ...options, wrt: options.wrt ?? attribution.wrt, target: targetOf(attribution, options.target) });
  checkAttributionShape('completeness', attribution, a.x.shape);
  const b = resolveBaseline(options.baseline, a.x, 'completeness: baseline').data;
  const R = a.rowSize;
  const fb = await a.scores(a.n, (s, e) => ({ rows: b.slice(s * R, e * R), owner: ownRows(s, e) }));
  // Score f(x) as the metric's own model run sees it, so that a stale or foreign `scores` field cannot skew the delta.
  const result = completeness({ ...attribution, scores: a.scores0 }, fb, { tolerance: options.tolerance, baseline: describeBaseline(options.baseline) });
  return { ...result, ms: performance.now() - started };
}
