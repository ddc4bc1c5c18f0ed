/**
 * Active interpretability (Zhang et al. §IV; Räuker et al.'s intrinsic methods): loss terms and layers that make a
 * network readable while it trains — tree regularisation, sparsity and modularity, prototype layers, concept
 * bottlenecks, interpretable filters, β-VAE, adversarial training, continual-learning importances and attribution
 * priors. Each is compared with its unregularised twin: the accuracy it costs and the gain it claims, measured.
 */
import { ADVERSARIAL_TRAINING_METHODS } from './adversarial-training.js';
import { ATTRIBUTION_PRIOR_METHODS } from './attribution-prior.js';
import { CONCEPT_BOTTLENECK_METHODS } from './bottleneck.js';
import { CONTINUAL_METHODS } from './continual-units.js';
import { INTERPRETABLE_FILTER_METHODS } from './filters.js';
import { MODULARITY_METHODS } from './modularity.js';
import { PROTOTYPE_METHODS } from './protopnet.js';
import { SPARSITY_METHODS } from './sparsity.js';
import { TREE_REGULARIZATION_METHODS } from './tree-regularization.js';
import { VAE_METHODS } from './vae.js';

export const ACTIVE_METHODS = {
  ...TREE_REGULARIZATION_METHODS,
  ...SPARSITY_METHODS,
  ...MODULARITY_METHODS,
  ...PROTOTYPE_METHODS,
  ...CONCEPT_BOTTLENECK_METHODS,
  ...INTERPRETABLE_FILTER_METHODS,
  ...VAE_METHODS,
  ...ADVERSARIAL_TRAINING_METHODS,
  ...CONTINUAL_METHODS,
  ...ATTRIBUTION_PRIOR_METHODS,
};

export { trainTwins, trainRun, testAccuracy, type Regularizer, type Twins, type TrainedRun } from './twin.js';
export { l1Regularizer, groupLassoRegularizer, l0Regularizer, sparsityRegularizer, trainSparse } from './sparsity.js';
export { modularityRegularizer, trainModular } from './modularity.js';
export { treeRegularizer, trainTreeRegularized, averagePathLength } from './tree-regularization.js';
export { prototypeAutoencoder, trainPrototypeAutoencoder } from './prototypes.js';
export { protoPNet, trainProtoPNet, pushPrototypes, prototypeRegularizer } from './protopnet.js';
export { explainProtoPNet, writeProtoPNetReport } from './prototype-report.js';
export { bottleneckModel, conceptBottleneckRegularizer, trainConceptBottleneck, measureLeakage } from './bottleneck.js';
export { parseConceptTable, type ConceptTable } from './concept-data.js';
export { filterLoss, interpretableFiltersRegularizer, trainInterpretableFilters, scoreFilters } from './filters.js';
export { betaVae, trainVae, compareBetaVae, latentTraversal } from './vae.js';
export { adversarialTraining, robustAccuracy, trainAdversarial } from './adversarial-training.js';
export { splitTasks, ewcTerm, siTerm, empiricalFisher, trainContinual, ewcRegularizer } from './continual.js';
export { continualLearning, unitSpecialisation, ablateTaskUnits } from './continual-units.js';
export { rightReasonsTerm, attributionPriorRegularizer, rightForTheRightReasons, decoyMnist } from './attribution-prior.js';
