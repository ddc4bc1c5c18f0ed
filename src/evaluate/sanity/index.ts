/**
 * Sanity checks of attribution methods, as a table: what each measures, the paper, and its call. The calls differ
 * in what they need (a trained model, an architecture and data to retrain), so each entry's `run` keeps its own
 * signature; `satisfies` checks the descriptive fields.
 *
 * @example
 * const r = await sanityMetrics['cascading-randomization'].run(model, { x }, { method: 'gradient' });
 * r.checks[0]; // passed when the explanation changed with the weights
 */
import { cascadingRandomization, dataRandomization, independentRandomization } from './randomization.js';
import { roar } from './roar.js';

export interface SanityMetric {
  readonly title: string;
  readonly reference: string;
  /** What it measures, in a sentence. */
  readonly measures: string;
  readonly run: (...args: never[]) => Promise<unknown>;
}

const ADEBAYO = 'Adebayo et al. 2018, Sanity Checks for Saliency Maps';

export const sanityMetrics = {
  'cascading-randomization': {
    title: 'Cascading model-parameter randomisation',
    reference: ADEBAYO,
    measures: 'Similarity (Spearman abs/signed, SSIM) of explanations as layers are re-initialised from the output down; should fall towards 0.',
    run: cascadingRandomization,
  },
  'independent-randomization': {
    title: 'Independent (per-layer) model-parameter randomisation',
    reference: ADEBAYO,
    measures: 'Similarity of explanations with one layer re-initialised at a time; each layer should matter.',
    run: independentRandomization,
  },
  'data-randomization': {
    title: 'Data (label) randomisation',
    reference: ADEBAYO,
    measures: 'Similarity of the explanations of a model trained on true labels and of one that memorised permuted labels; should be low.',
    run: dataRandomization,
  },
  roar: {
    title: 'Remove and retrain (ROAR)',
    reference: 'Hooker et al. 2019, A Benchmark for Interpretability Methods in Deep Neural Networks',
    measures: 'Test accuracy of models retrained with the top-ranked fraction of pixels replaced by the mean; a good ranking degrades it faster than a random one.',
    run: roar,
  },
} satisfies Record<string, SanityMetric>;

export { pearson, spearman, ranks, ssim, topKIntersection, topIndices, mapSimilarity, type SsimOptions, type SimilarityName, type MapSimilarityOptions } from './similarity.js';
export {
  cascadingRandomization,
  independentRandomization,
  dataRandomization,
  compareAttributions,
  type RandomizationOptions,
  type DataRandomizationOptions,
  type RandomizationResult,
  type RandomizationRow,
  type Similarity,
} from './randomization.js';
export { parameterLayers, randomizedCopy, reinitialized, type ParameterLayer } from './reinit.js';
export { roar, type RoarOptions, type RoarResult, type RoarProgress, type RankSource, type Ranker } from './roar.js';
export { trainFresh, permutedLabels, type RetrainOptions, type Trained } from './retrain.js';
