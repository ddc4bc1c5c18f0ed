/**
 * Internal representations (Räuker et al. V): probing with controls, concept vectors (CAV, TCAV, ACE),
 * representation similarity (CKA, CCA family, RSA, Procrustes, stitching), tokens and attention, sparse dictionaries
 * and disentanglement metrics, and adversaries as a tool. Every result carries the checks that test it.
 */
import { ADVERSARY_METHODS } from './adversarial.js';
import { ATTENTION_METHODS } from './attention.js';
import { PROBING_METHODS } from './probing.js';
import { DICTIONARY_METHODS } from './sae.js';
import { SIMILARITY_METHODS } from './similarity.js';
import { CONCEPT_METHODS } from './tcav.js';

export const REPRESENTATION_METHODS = { ...PROBING_METHODS, ...CONCEPT_METHODS, ...SIMILARITY_METHODS, ...ATTENTION_METHODS, ...DICTIONARY_METHODS, ...ADVERSARY_METHODS };

export { probe, probeLayers, PROBING_METHODS } from './probing.js';
export { fitSoftmax, fitMlp, fitRidge } from './linear-models.js';
export { cav, tcav, conceptAttribution, CONCEPT_METHODS } from './tcav.js';
export { ace } from './ace.js';
export { tTest, bonferroni, studentTTwoSided } from './stats.js';
export { similarity, compare, layerSimilarity, unbiasedHsic, minibatchCka, SIMILARITY_METHODS } from './similarity.js';
export { canonicalCorrelations, procrustesDistance, spearman, pearson } from './cca.js';
export { stitch } from './stitching.js';
export { attentionPatterns, attentionRollout, attentionFlow, headImportance, tokenAttribution, tokenHtml, ATTENTION_METHODS } from './attention.js';
export { logitLens, directLogitAttribution, unembedding } from './logit-lens.js';
export { trainSae, evaluateSae, splicedLoss, siteSource, matrixSource, DICTIONARY_METHODS } from './sae.js';
export { mig, dci, mutualInformation } from './disentanglement.js';
export { fgsm, pgd, ADVERSARY_METHODS } from './adversarial.js';
export { featureAdversary, attackUnits } from './feature-adversary.js';
export { SparseAutoencoder } from './sae.js';
