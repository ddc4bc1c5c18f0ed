/**
 * Deletion and insertion (Petsiuk, Das, Saenko 2018, "RISE: Randomized Input Sampling for Explanation of Black-box
 * Models", §4.1): features are ranked by attribution, most important first; deletion moves them k per step from the
 * example to a substrate (zero by default, as RISE), insertion moves them from a substrate (a blurred copy of an
 * image by default, as RISE; zero for non-images) back to the example. The explained score f is read after every
 * step and the AUC is taken by the trapezoid rule over the fraction of features moved, on [0, 1]. A faithful
 * attribution has a low deletion AUC (the score drops fast) and a high insertion AUC.
 *
 * f is the score the attribution explains (a logit for class targets); RISE reads softmax probabilities, so give a
 * model that outputs them (or a { seed } target on such an output) for the paper's numbers.
 *
 * @example
 * const ig = await integratedGradients(model, { x }, { target: 3 });
 * const del = await deletion(model, { x }, ig, { step: 16 });       // del.values: AUC per example; del.curve
 * const ins = await insertion(model, { x }, ig, { substrate: 'blur' });
 */
import { Attributor } from '../methods/attribution/attributor.js';
import { resolveBaseline, type Baseline } from '../methods/attribution/baseline.js';
import { describeBaseline } from '../methods/attribution/baseline.js';
import type { Attribution } from '../methods/attribution/explanation.js';
import type { Model } from '../model/model.js';
import { defaultPatch, featureGroups, perturbationCurve, rankGroups, trapezoid, type GroupSpec } from './curve.js';
import { checkAttributionShape, mean, positiveInt, targetOf, type Evaluation, type Inputs, type MetricBaseOptions } from './evaluation.js';

export interface DeletionOptions extends MetricBaseOptions, GroupSpec {
  /** Features moved per step (default 1% of them, at least 1). Features default to pixels for images [C, H, W], else values. */
  readonly step?: number;
  /** Where removed features go, and where insertion starts: a number, 'zero', 'blur' or a tensor (see above for defaults). */
  readonly substrate?: Baseline;
  /** Rank features by |attribution| instead of the signed value (default false). */
  readonly abs?: boolean;
}

/** Deletion AUC per example (lower is better). */
export function deletion(model: Model, inputs: Inputs, attribution: Attribution, options: DeletionOptions = {}): Promise<Evaluation> {
  return riseCurve('deletion', model, inputs, attribution, options);
}

/** Insertion AUC per example (higher is better). */
export function insertion(model: Model, inputs: Inputs, attribution: Attribution, options: DeletionOptions = {}): Promise<Evaluation> {
  return riseCurve('insertion', model, inputs, attribution, options);
}

async function riseCurve(metric: 'deletion' | 'insertion', model: Model, inputs: Inputs, attribution: Attribution, options: DeletionOptions): Promise<Evaluation> {
  const started = performance.now();
  const a = await Attributor.create(model, inputs, { ...options, wrt: options.wrt ?? attribution.wrt, target: targetOf(attribution, options.target) });
  const attr = checkAttributionShape(metric, attribution, a.x.shape);
  const groups = featureGroups(a.rowShape, { patch: options.patch ?? defaultPatch(a.rowShape), featureMask: options.featureMask }, metric);
  const G = groups.count;
  const k = positiveInt(metric, 'step', options.step ?? Math.max(1, Math.ceil(G / 100)));
  const substrateKind = options.substrate ?? (metric === 'insertion' && a.x.rank >= 4 ? 'blur' : 0);
  const substrate = resolveBaseline(substrateKind, a.x, `${metric}: substrate`).data;
  const steps = Math.ceil(G / k);
  const counts = Array.from({ length: steps + 1 }, (_, p) => Math.min(p * k, G));
  const order = rankGroups(attr, groups, a.n, 'descending', options.abs ?? false);
  const [start, other] = metric === 'deletion' ? [a.x.data, substrate] : [substrate, a.x.data];
  const scores = await perturbationCurve(a, { start, other, groups, order, counts });
  const fractions = counts.map((c) => c / G);
  const values = scores.map((y) => trapezoid(fractions, y));
  return {
    metric,
    method: attribution.method,
    values,
    mean: mean(values),
    higherIsBetter: metric === 'insertion',
    curve: { x: fractions, scores },
    checks: [],
    params: { step: k, steps, features: G, substrate: describeBaseline(substrateKind), abs: options.abs ?? false, patch: options.featureMask ? 'featureMask' : options.patch ?? defaultPatch(a.rowShape) },
    ms: performance.now() - started,
  };
}
