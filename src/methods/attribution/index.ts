/** The attribution API: methods, their one result type, targets, baselines and the registry. */
export { Attributor, type AttributionOptions, type RowMaker } from './attributor.js';
export type { Attribution, Check } from './explanation.js';
export { completenessCheck, sumPerExample } from './explanation.js';
export type { Target, ResolvedTarget } from './target.js';
export { resolveBaseline, gaussianBlur, type Baseline } from './baseline.js';
export { quadrature, QUADRATURES, type Quadrature } from './quadrature.js';
export { gradient, saliency, gradientXInput, integratedGradients, expectedGradients, gradientShap } from './gradient.js';
export type { IntegratedGradientsOptions, ExpectedGradientsOptions } from './gradient.js';
export { smooth, type SmoothOptions, type AttributionMethod } from './smooth.js';
export type { ExplainOptions, MethodEntry } from './method.js';
export { featureAblation, kernelShap, lime, occlusion, shapleySampling, patchMask, superpixels, defaultWindow } from './perturbation/index.js';
export type { FeatureAblationOptions, KernelShapOptions, LimeOptions, OcclusionOptions, ShapleyOptions, SuperpixelOptions } from './perturbation/index.js';
export { guidedBackprop, deconvNet, backpropRules } from './backprop.js';
export { gradCam, guidedGradCam, defaultCamSite } from './cam.js';
export { layerActivationXGradient, layerIntegratedGradients, layerConductance } from './layer.js';
export { neuronGradient, neuronIntegratedGradients, neuronConductance } from './neuron.js';
export { deepLift, lrp, COMPOSITES, LRP_RULES, foldBatchNorm } from './propagation/index.js';
export type { DeepLiftOptions, LrpOptions, CompositeName, RuleName } from './propagation/index.js';
