export { dataset, classCounts, mapInputs } from './dataset.js';
export type { Batch, Batches, BatchOptions, Dataset, DatasetSource, Example, InputDType } from './dataset.js';
export { split, featureStats, standardize } from './split.js';
export type { FeatureStats, SplitOptions } from './split.js';
export { mulberry32, mixSeed, permutation, shuffleInPlace } from './random.js';
export { parseIdx, readIdx } from './idx.js';
export {
  imageClassDataset,
  loadMnist,
  loadFashionMnist,
  MNIST_CLASSES,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
} from './images.js';
export type { ImageClassSpec, ImageLoadOptions, ImageSplit } from './images.js';
export { loadIris, loadWine, loadBreastCancer, loadTabular, parseSklearnCsv, TABULAR } from './tabular.js';
export type { TabularSpec } from './tabular.js';
export { TaggedCorpus, loadBrown, parseTaggedCorpus, baseTag } from './brown.js';
export type { CorpusDocument, TaggedText, TaggedToken } from './brown.js';
export { Vocabulary } from './vocab.js';
export type { VocabularyOptions } from './vocab.js';
export { languageModelDataset } from './language-model.js';
export type { LanguageModelDataset, LanguageModelOptions } from './language-model.js';
export { brownWords } from './brown-words.js';
export type { BrownWords, BrownWordsOptions } from './brown-words.js';
export { priorBaseline, labelCounts } from './baseline.js';
export type { PriorBaseline } from './baseline.js';
export { withTrigger, triggeredCopy, triggerMask } from './backdoor.js';
export type { Trigger, TriggerOptions, Poisoned } from './backdoor.js';
export { conceptDataset, classRegionConcepts, withConcepts, packMask, unpackMask, maskCount, sceneConceptNames } from './concepts.js';
export type { ConceptDataset, ConceptDatasetSpec, ClassRegionOptions } from './concepts.js';
export { inductionDataset, inductionPositions } from './induction.js';
export type { InductionDataset, InductionOptions } from './induction.js';
export { factorDataset } from './factors.js';
