/**
 * The perturbation attribution methods (Zhang et al. 2021: passive, attribution, local) as a registry table, and
 * their functions and mask helpers. Each entry maps the uniform `ExplainOptions` (window, stride, featureMask,
 * samples, seed, baseline) to its method's options; other knobs keep their documented defaults.
 *
 * @example
 * const e = await perturbationMethods['kernel-shap'].explain(model, { x }, { featureMask: patchMask([1, 28, 28], 7), samples: 500 });
 */
import type { MethodEntry } from '../method.js';
import { passiveAttribution } from '../../taxonomy.js';
import { featureAblation } from './ablation.js';
import { kernelShap } from './kernel-shap.js';
import { lime } from './lime.js';
import { occlusion } from './occlusion.js';
import { shapleySampling } from './shapley.js';

export { featureAblation, type FeatureAblationOptions } from './ablation.js';
export { kernelShap, shapleyKernel, type KernelShapOptions } from './kernel-shap.js';
export { lime, type LimeOptions } from './lime.js';
export { defaultWindow, patchMask, superpixels, type SuperpixelOptions } from './masks.js';
export { occlusion, type OcclusionOptions } from './occlusion.js';
export { shapleySampling, shapleyWeights, type ShapleyOptions } from './shapley.js';

const local = passiveAttribution('local');

export const perturbationMethods = {
  occlusion: {
    info: { title: 'Occlusion', reference: 'Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks', taxonomy: local },
    explain: (m, x, o) => occlusion(m, x, o),
  },
  'feature-ablation': {
    info: { title: 'Feature ablation', reference: 'Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks (occlusion of feature groups)', taxonomy: local },
    explain: (m, x, o) => featureAblation(m, x, o),
  },
  lime: {
    info: { title: 'LIME', reference: 'Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?": Explaining the Predictions of Any Classifier', taxonomy: local, stochastic: true },
    explain: (m, x, o) => lime(m, x, o),
  },
  'shapley-sampling': {
    info: { title: 'Shapley value sampling', reference: 'Castro, Gómez & Tejada 2009, Polynomial calculation of the Shapley value based on sampling; Štrumbelj & Kononenko 2014', taxonomy: local, complete: true, stochastic: true },
    explain: (m, x, o) => shapleySampling(m, x, o),
  },
  'kernel-shap': {
    info: { title: 'KernelSHAP', reference: 'Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions', taxonomy: local, complete: true, stochastic: true },
    explain: (m, x, o) => kernelShap(m, x, o),
  },
} satisfies Record<string, MethodEntry>;
