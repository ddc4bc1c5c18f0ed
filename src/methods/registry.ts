/**
 * Every method glassbox implements, by name, with its coordinates in the two taxonomies (taxonomy.ts). The table is
 * data: the CLI (`glassbox methods`, `glassbox explain --method`), the shared axiom tests and the evaluation metrics
 * all read it.
 */
import { expectedGradients, gradient, gradientShap, gradientXInput, integratedGradients, saliency } from './attribution/gradient.js';
import type { ExplainOptions, MethodEntry } from './attribution/method.js';
import { hiddenAttributionMethods } from './attribution/hidden-index.js';
import { perturbationMethods } from './attribution/perturbation/index.js';
import { propagationMethods } from './attribution/propagation/index.js';
import { smooth } from './attribution/smooth.js';
import { passiveAttribution } from './taxonomy.js';
import { unknownNameError } from '../util/nearest.js';
import { Tensor } from '../runtime/tensor.js';

const local = passiveAttribution('local');

/** The reference examples of expected gradients: a tensor baseline, else the batch itself (a small background sample). */
function referencesOf(inputs: Readonly<Record<string, Tensor>>, o: ExplainOptions): Tensor {
  if (o.baseline instanceof Tensor) return o.baseline;
  const t = o.wrt ? inputs[o.wrt] : Object.values(inputs).find((v) => v.dtype === 'float32');
  if (!t) throw new Error('expected gradients: give the reference examples as a tensor baseline, or attribute to a float input');
  return t;
}

export const ATTRIBUTION_METHODS = {
  gradient: {
    info: { title: 'Gradient', reference: 'Simonyan et al. 2014, Deep Inside Convolutional Networks', taxonomy: local },
    explain: (m, x, o) => gradient(m, x, o),
  },
  saliency: {
    info: { title: 'Saliency (gradient magnitude)', reference: 'Simonyan et al. 2014, Deep Inside Convolutional Networks', taxonomy: local },
    explain: (m, x, o) => saliency(m, x, o),
  },
  'gradient-x-input': {
    info: { title: 'Gradient × input', reference: 'Shrikumar et al. 2016, Not Just a Black Box', taxonomy: local },
    explain: (m, x, o) => gradientXInput(m, x, o),
  },
  'integrated-gradients': {
    info: { title: 'Integrated gradients', reference: 'Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks', taxonomy: local, complete: true },
    explain: (m, x, o) => integratedGradients(m, x, o),
  },
  smoothgrad: {
    info: { title: 'SmoothGrad', reference: 'Smilkov et al. 2017, SmoothGrad: removing noise by adding noise', taxonomy: local, stochastic: true },
    explain: (m, x, o) => smooth(gradient, { samples: o.samples, seed: o.seed })(m, x, o),
  },
  'smoothgrad-squared': {
    info: { title: 'SmoothGrad²', reference: 'Hooker et al. 2019, A Benchmark for Interpretability Methods (SG-SQ)', taxonomy: local, stochastic: true },
    explain: (m, x, o) => smooth(gradient, { samples: o.samples, seed: o.seed, kind: 'squared' })(m, x, o),
  },
  vargrad: {
    info: { title: 'VarGrad', reference: 'Adebayo et al. 2018, Local Explanation Methods for DNNs Lack Sensitivity to Parameter Values', taxonomy: local, stochastic: true },
    explain: (m, x, o) => smooth(gradient, { samples: o.samples, seed: o.seed, kind: 'var' })(m, x, o),
  },
  'expected-gradients': {
    info: { title: 'Expected gradients', reference: 'Erion et al. 2021, Improving performance of deep learning models with axiomatic attribution priors and expected gradients', taxonomy: local, stochastic: true },
    explain: (m, x, o) => expectedGradients(m, x, { ...o, baselines: referencesOf(x, o) }),
  },
  'gradient-shap': {
    info: { title: 'GradientSHAP', reference: 'Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions', taxonomy: local, stochastic: true },
    explain: (m, x, o) => gradientShap(m, x, { ...o, baselines: referencesOf(x, o) }),
  },
  ...perturbationMethods,
  ...propagationMethods,
  ...hiddenAttributionMethods,
} satisfies Record<string, MethodEntry>;

export type AttributionMethodName = keyof typeof ATTRIBUTION_METHODS;

/** The entry of a method by name; an unknown name lists the nearest ones. */
export function attributionMethod(name: string): MethodEntry & { readonly name: string } {
  if (!Object.hasOwn(ATTRIBUTION_METHODS, name)) throw unknownNameError('attribution method', name, Object.keys(ATTRIBUTION_METHODS));
  return { name, ...(ATTRIBUTION_METHODS as Record<string, MethodEntry>)[name] };
}
