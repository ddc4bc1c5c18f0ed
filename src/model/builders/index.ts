/** Builders of glassbox's own models: each returns an ONNX ModelProto (opset 17) with seeded PyTorch-default weights. */
export { mlp, type MlpSpec } from './mlp.js';
export { cnn, type CnnSpec } from './cnn.js';
export { gpt, type GptSpec } from './gpt.js';
export { attnOnly, attnOnlyNodes, nodesFromSites, type AttnOnlySpec, type ResidualNode } from './attn-only.js';
export { OPSET } from './net.js';
export { standardized } from './standardize.js';
