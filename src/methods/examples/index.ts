/**
 * Explanations by example (Zhang et al.'s "examples" format, local scope): which training examples a prediction
 * rests on. Räuker et al. give these no place of their own (they explain through the data, not an inner part), so
 * the entries carry no Räuker coordinates. Each entry keeps its own `run` signature.
 */
import { passive, type MethodInfo } from '../taxonomy.js';
import { influenceFunctions } from './influence.js';
import { nearestNeighbours } from './neighbours.js';
import { representerPoints } from './representer.js';
import { tracin } from './tracin.js';

export { nearestNeighbours, type Metric, type NeighbourOptions, type NeighbourResult } from './neighbours.js';
export {
  influenceFunctions,
  lastLayer,
  lastLayerFeatures,
  exampleGradient,
  hessianVector,
  objective,
  probabilities,
  conjugateGradient,
  lissa,
  largestEigenvalue,
  cosine,
  topExamples,
  type LastLayer,
  type Features,
  type RankedExample,
  type SolveResult,
  type LissaOptions,
  type InfluenceOptions,
  type InfluenceResult,
} from './influence.js';
export { tracin, fitWithCheckpoints, type TracInCheckpoint, type TracInResult } from './tracin.js';
export { representerPoints, fitSoftmax, type FitResult, type RepresenterOptions, type RepresenterResult } from './representer.js';

const examples = passive('examples', 'local');

export const EXAMPLE_EXPLANATION_METHODS = {
  'nearest-neighbours': {
    info: { title: 'Nearest training examples in a site\'s space', reference: 'Papernot & McDaniel 2018, Deep k-Nearest Neighbors', taxonomy: examples },
    run: nearestNeighbours,
  },
  'influence-functions': {
    info: { title: 'Influence functions (last layer; CG or LiSSA)', reference: 'Koh & Liang 2017, Understanding Black-box Predictions via Influence Functions', taxonomy: examples, stochastic: true },
    run: influenceFunctions,
  },
  tracin: {
    info: { title: 'TracIn over checkpoints (last layer)', reference: 'Pruthi et al. 2020, Estimating Training Data Influence by Tracing Gradient Descent', taxonomy: examples },
    run: tracin,
  },
  'representer-points': {
    info: { title: 'Representer points of the last layer', reference: 'Yeh et al. 2018, Representer Point Selection for Explaining Deep Neural Networks', taxonomy: examples },
    run: representerPoints,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
