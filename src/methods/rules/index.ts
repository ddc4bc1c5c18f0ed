/**
 * Rules as explanations (Zhang et al. §III-A): global rules learned from a network's own labels (pedagogical: a CART
 * tree or a sequential-covering rule set with Trepan-style querying), read off its weights (decompositional: KT and
 * M-of-N), and local ones around one input (anchors, counterfactuals, CEM pertinent positives and negatives, CDRP
 * critical routing paths). Every result carries the checks that test it: fidelity to the network, precision,
 * coverage, size, search cost.
 */
import { ANCHOR_METHODS } from './anchors.js';
import { COUNTERFACTUAL_METHODS } from './counterfactual.js';
import { LOCAL_RULE_METHODS } from './local.js';
import { DECOMPOSITIONAL_METHODS } from './mofn.js';
import { PEDAGOGICAL_METHODS } from './pedagogical.js';

export const RULE_METHODS = { ...PEDAGOGICAL_METHODS, ...DECOMPOSITIONAL_METHODS, ...ANCHOR_METHODS, ...COUNTERFACTUAL_METHODS, ...LOCAL_RULE_METHODS };

export { fitTree, DecisionTree, type Matrix } from './tree.js';
export { learnRuleSet, treeRules, RuleList, type Condition, type Rule } from './rule-set.js';
export { tabularFeatures, patchFeatures, featureSpaceOf } from './features.js';
export { extractRules, PEDAGOGICAL_METHODS, type RuleExtraction } from './pedagogical.js';
export { formatRules, rulesJson, extractionJson } from './format.js';
export { kt } from './kt.js';
export { mOfN, DECOMPOSITIONAL_METHODS } from './mofn.js';
export { booleanDataset, binarize, quantileCuts, equivalence, simplifyDnf, formatRule } from './boolean.js';
export { anchors, klLowerBound, klUpperBound, ANCHOR_METHODS, type AnchorExplanation } from './anchors.js';
export { tabularSpace, imageSpace, type PerturbationSpace } from './perturb.js';
export { counterfactual, COUNTERFACTUAL_METHODS } from './counterfactual.js';
export { cem, pertinentNegative, pertinentPositive, cdrp, LOCAL_RULE_METHODS } from './local.js';
