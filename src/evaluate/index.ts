/**
 * Evaluation metrics of attribution methods, by name, as one typed table: what each measures, the paper that defines
 * it, which direction is better, and one uniform call that runs any attribution method (a registry name or a
 * function) and scores it. Each metric also has its own function taking a finished `Attribution`.
 *
 * @example
 * const del = await METRICS.deletion.evaluate(model, { x }, 'integrated-gradients', { target: 3, step: 16 });
 * const inv = await METRICS['input-invariance'].evaluate(model, { x }, 'gradient', { shift: -1 });
 * del.mean; inv.checks[0].passed;
 */
import type { ExplainOptions } from '../methods/attribution/method.js';
import type { Model } from '../model/model.js';
import { completenessOf, type CompletenessOptions } from './completeness.js';
import { deletion, insertion, type DeletionOptions } from './deletion.js';
import { explainWith, type Evaluation, type Inputs, type MethodRef } from './evaluation.js';
import { infidelity, maxSensitivity, type InfidelityOptions, type SensitivityOptions } from './infidelity.js';
import { inputInvariance, type InvarianceCase, type InvarianceOptions } from './input-invariance.js';
import { pixelFlipping, type PixelFlippingOptions } from './pixel-flipping.js';

export { absorbShift, type ShiftedModel } from './absorb-shift.js';
export { completeness, completenessOf, type CompletenessOptions } from './completeness.js';
export { featureGroups, perturbationCurve, rankGroups, trapezoid, type Groups, type GroupSpec } from './curve.js';
export { deletion, insertion, type DeletionOptions } from './deletion.js';
export { explainWith, targetOf, type Evaluation, type MethodRef, type MetricBaseOptions } from './evaluation.js';
export { infidelity, maxSensitivity, type InfidelityOptions, type SensitivityOptions } from './infidelity.js';
export { inputInvariance, inputInvarianceAll, type InvarianceCase, type InvarianceOptions } from './input-invariance.js';
export { pixelFlipping, type PixelFlippingOptions } from './pixel-flipping.js';

/** Every metric's knobs in one bag (each metric reads its own); `explain` holds the attribution method's options. */
export type MetricOptions = CompletenessOptions &
  DeletionOptions &
  Omit<PixelFlippingOptions, 'order'> &
  InfidelityOptions &
  SensitivityOptions &
  InvarianceOptions &
  Pick<InvarianceCase, 'shiftBaseline'> & { readonly explain?: ExplainOptions };

export interface MetricEntry {
  readonly title: string;
  /** The paper that defines it (author year, short title). */
  readonly reference: string;
  /** What it measures, in a sentence. */
  readonly measures: string;
  readonly higherIsBetter: boolean;
  readonly evaluate: (model: Model, inputs: Inputs, method: MethodRef, options: MetricOptions) => Promise<Evaluation>;
}

/** The method's attribution for the metric's target and value. */
function explain(model: Model, inputs: Inputs, method: MethodRef, o: MetricOptions) {
  return explainWith(method, model, inputs, { ...o.explain, target: o.target ?? o.explain?.target, wrt: o.wrt ?? o.explain?.wrt, maxBatchBytes: o.maxBatchBytes, signal: o.signal });
}

export const METRICS = {
  completeness: {
    title: 'Completeness (summation to delta)',
    reference: 'Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks; Shrikumar et al. 2017, DeepLIFT',
    measures: '|Σ attributions − (f(x) − f(baseline))| per example, the baseline being the method\'s own',
    higherIsBetter: false,
    evaluate: async (m, x, method, o) => {
      const baseline = o.baseline ?? o.explain?.baseline;
      return completenessOf(m, x, await explain(m, x, method, { ...o, explain: { ...o.explain, baseline } }), { ...o, baseline });
    },
  },
  deletion: {
    title: 'Deletion AUC',
    reference: 'Petsiuk et al. 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models',
    measures: 'area under the score as the most important features are removed k at a time towards a substrate',
    higherIsBetter: false,
    evaluate: async (m, x, method, o) => deletion(m, x, await explain(m, x, method, o), o),
  },
  insertion: {
    title: 'Insertion AUC',
    reference: 'Petsiuk et al. 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models',
    measures: 'area under the score as the most important features are put back k at a time into a substrate',
    higherIsBetter: true,
    evaluate: async (m, x, method, o) => insertion(m, x, await explain(m, x, method, o), o),
  },
  morf: {
    title: 'AOPC, most relevant first',
    reference: 'Samek et al. 2017, Evaluating the visualization of what a Deep Neural Network has learned',
    measures: 'mean drop of the score over L steps that perturb regions in decreasing order of relevance',
    higherIsBetter: true,
    evaluate: async (m, x, method, o) => pixelFlipping(m, x, await explain(m, x, method, o), { ...o, order: 'morf' }),
  },
  lerf: {
    title: 'AOPC, least relevant first',
    reference: 'Samek et al. 2017, Evaluating the visualization of what a Deep Neural Network has learned',
    measures: 'mean drop of the score over L steps that perturb regions in increasing order of relevance',
    higherIsBetter: false,
    evaluate: async (m, x, method, o) => pixelFlipping(m, x, await explain(m, x, method, o), { ...o, order: 'lerf' }),
  },
  infidelity: {
    title: 'Infidelity',
    reference: 'Yeh et al. 2019, On the (In)fidelity and Sensitivity of Explanations',
    measures: 'E over Gaussian perturbations I of (Iᵀ Φ − (f(x) − f(x − I)))²',
    higherIsBetter: false,
    evaluate: async (m, x, method, o) => infidelity(m, x, await explain(m, x, method, o), o),
  },
  'max-sensitivity': {
    title: 'Max-sensitivity',
    reference: 'Yeh et al. 2019, On the (In)fidelity and Sensitivity of Explanations',
    measures: 'max over inputs in an L∞ ball of ‖Φ(x\') − Φ(x)‖ / ‖Φ(x)‖, re-running the method',
    higherIsBetter: false,
    evaluate: (m, x, method, o) => maxSensitivity(m, x, method, o),
  },
  'input-invariance': {
    title: 'Input invariance',
    reference: 'Kindermans et al. 2017, The (Un)reliability of saliency methods',
    measures: 'relative change of the attributions when a constant input shift is absorbed by the first layer\'s bias',
    higherIsBetter: false,
    evaluate: (m, x, method, o) => inputInvariance(m, x, method, o),
  },
} satisfies Record<string, MetricEntry>;

export type MetricName = keyof typeof METRICS;
