/**
 * Propagation methods — DeepLIFT (rescale) and LRP — as replaced backward rules over the same gradient builder, and
 * their registry entries. Every entry takes the uniform ExplainOptions; rule parameters keep their defaults there
 * (ε = 1e-6, γ = 0.25, α1β0, zᴮ bounds from each example's range) and are set through `lrp`/`deepLift` directly.
 *
 * @example
 * const r = await propagationMethods['lrp-epsilon-plus'].explain(model, { x }, { target: 3 });
 */
import type { MethodEntry } from '../method.js';
import { passiveAttribution } from '../../taxonomy.js';
import { deepLift } from './deeplift.js';
import { lrp } from './lrp.js';

export { deepLift, rescaleRules, RESCALED_OPS, type DeepLiftOptions } from './deeplift.js';
export { lrp, type LrpOptions } from './lrp.js';
export { COMPOSITES, planRules, type Composite, type CompositeName, type CompositeSettings } from './composites.js';
export { LRP_DEFAULTS, LRP_RULES, makeRule, type Bound, type LrpRule, type RuleName, type RuleSpec } from './lrp-rules.js';
export { foldBatchNorm, foldedModel } from './fold-bn.js';

const local = passiveAttribution('local');
const BACH = 'Bach et al. 2015, On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance Propagation';
const MONTAVON = 'Montavon et al. 2019, Layer-Wise Relevance Propagation: An Overview';

export const propagationMethods = {
  deeplift: {
    info: { title: 'DeepLIFT (rescale)', reference: 'Shrikumar et al. 2017, Learning Important Features Through Propagating Activation Differences', taxonomy: local, complete: true },
    explain: (m, x, o) => deepLift(m, x, o),
  },
  'lrp-epsilon': {
    info: { title: 'LRP-ε', reference: BACH, taxonomy: local },
    explain: (m, x, o) => lrp(m, x, { ...o, composite: 'epsilon' }),
  },
  'lrp-gamma': {
    info: { title: 'LRP-γ', reference: MONTAVON, taxonomy: local },
    explain: (m, x, o) => lrp(m, x, { ...o, composite: 'gamma' }),
  },
  'lrp-alpha-beta': {
    info: { title: 'LRP-α1β0', reference: BACH, taxonomy: local },
    explain: (m, x, o) => lrp(m, x, { ...o, composite: 'alpha-beta' }),
  },
  'lrp-zplus': {
    info: { title: 'LRP-z⁺', reference: MONTAVON, taxonomy: local },
    explain: (m, x, o) => lrp(m, x, { ...o, composite: 'zplus' }),
  },
  'lrp-epsilon-plus': {
    info: { title: 'LRP ε-plus composite (zᴮ input layer, z⁺ convolutions, ε dense layers)', reference: MONTAVON, taxonomy: local },
    explain: (m, x, o) => lrp(m, x, { ...o, composite: 'epsilon-plus' }),
  },
} satisfies Record<string, MethodEntry>;
