/** Everything glassbox exports, shared by the Node and browser entry points. */
export { Model, type LoadOptions, type RunOptions, type RunResult, type GradOptions, type GradResult } from './model/model.js';
export { defaultRules } from './autodiff/rules/index.js';
export { buildGradGraph, type GradSpec, type GradGraph } from './autodiff/grad.js';
export type { RuleTable, VjpRule, VjpArgs, Emitter } from './autodiff/types.js';
export type { Site } from './model/sites.js';
export type { Intervention, InterventionKind } from './model/interventions.js';
export { defaultUnitAxis } from './model/interventions.js';
export { Tensor, concatRows, sliceRows, type DType } from './runtime/tensor.js';
export type { Runtime, RuntimeSession, SessionOptions, OptimizationLevel } from './runtime/runtime.js';
export { setDefaultRuntime } from './runtime/default.js';
export { ortRuntime } from './runtime/ort.js';
export { SessionCache } from './runtime/cache.js';
export { Graph, type ValueInfo } from './onnx/graph.js';
export * as rewrite from './onnx/rewrite.js';
export { tensorFromProto, tensorToProto } from './onnx/tensor-proto.js';
export { parseNpy, encodeNpy, readNpy, writeNpy } from './data/npy.js';
export { decodePng, encodePng, readPng, writePng } from './data/png.js';
