/** glassbox for Node: the public API, with onnxruntime-node as the default runtime. */
import { setDefaultRuntime } from './runtime/default.js';

setDefaultRuntime(async () => (await import('./runtime/node.js')).nodeRuntime);

export * from './api.js';
/** Datasets read files from disk (npm packages, Debian's data), so they are part of the Node entry only. */
export * from './data/datasets/index.js';
export { bundledModels } from './data/bundled.js';
/** Training writes checkpoints to disk, so the trainer is part of the Node entry; builders emit plain ONNX. */
export * as train from './model/train/index.js';
export * as builders from './model/builders/index.js';
/** Evaluation of explanations (sanity checks and ROAR retrain models, so they are Node-side too). */
export * as evaluate from './evaluate/index.js';
export * as sanity from './evaluate/sanity/index.js';
export { globalMethods, aggregateAttributions, spray } from './methods/attribution/global/index.js';
/** Hidden semantics: neurons, weights and subnetworks (several stream datasets and train masks, so Node-side). */
export * as neurons from './methods/neurons/index.js';
export * as weights from './methods/weights/index.js';
export { imageGrid, type GridOptions } from './report/grid.js';
export * as subnetworks from './methods/subnetworks/index.js';
export { HIDDEN_METHODS } from './methods/hidden.js';
export * as examples from './methods/examples/index.js';
export * as representations from './methods/representations/index.js';
export * as rules from './methods/rules/index.js';
export * as active from './methods/active/index.js';
