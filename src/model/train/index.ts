/** Training glassbox's own models: the step graph (forward, loss, backward in one session), optimisers, checkpoints. */
export { Trainer, type TrainerOptions, type TrainState, type EpochRecord, type StepResult, type Evaluation, type FitOptions, type FitResult } from './trainer.js';
export { Optimizer, fullConfig, type OptimizerConfig, type FullConfig } from './optim.js';
export { promoteInitializers } from './promote.js';
export { appendClassifierHead, HEAD, type HeadOptions } from './loss.js';
export { buildStepGraph, buildEvalGraph, buildInputGradGraph, probeShapes, type StepGraph, type StepSpec } from './graph.js';
export { appendTerms, TOTAL_LOSS, type LossTerm, type HostTerm, type TermBuilder } from './terms.js';
export { encodeCheckpoint, decodeCheckpoint, readCheckpoint, resumeTrainer, writeFileAtomic, withMetadata, TRAIN_META_KEY, type Checkpoint, type TrainMeta } from './checkpoint.js';
export { progressLine, progressPrinter, type Progress } from './progress.js';
