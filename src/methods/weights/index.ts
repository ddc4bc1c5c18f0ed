/**
 * Methods that explain weights (Räuker et al. 2023, II): pruning curves (how many weights are frivolous) and
 * learnt weight masks (which weights a subtask needs), registered with their places in both taxonomies.
 */
import { passiveHidden, RAUKER, type MethodInfo } from '../taxonomy.js';
import { learnWeightMask } from './masks.js';
import { pruningCurve } from './pruning.js';

export {
  crossEntropy,
  defaultWeightNames,
  pruneWeights,
  pruningCurve,
  pruningScores,
  taylorScores,
  WeightEvaluator,
  type CurvePoint,
  type PruningCriterion,
  type PruningCurve,
  type PruningOptions,
} from './pruning.js';
export { learnWeightMask, maskedGraph, type Accuracies, type WeightMask, type WeightMaskOptions } from './masks.js';

export const WEIGHT_METHODS = {
  'pruning-curve': {
    info: {
      title: 'Pruning curve (magnitude or first-order Taylor saliency)',
      reference: 'Han et al. 2015, Learning both Weights and Connections; Molchanov et al. 2017, Pruning CNNs for Resource Efficient Inference',
      taxonomy: passiveHidden('global', RAUKER.frivolousWeights),
    },
    run: pruningCurve,
  },
  'weight-mask': {
    info: {
      title: 'Learnt weight mask (L1 sigmoid or L0 hard-concrete gates)',
      reference: 'Csordás et al. 2021, Are Neural Nets Modular?; Louizos et al. 2018, Learning Sparse Neural Networks through L0 Regularization',
      taxonomy: passiveHidden('global', RAUKER.weightMasking),
      stochastic: true,
    },
    run: learnWeightMask,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
