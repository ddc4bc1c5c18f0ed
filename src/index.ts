/** glassbox for Node: the public API, with onnxruntime-node as the default runtime. */
import { setDefaultRuntime } from './runtime/default.js';

setDefaultRuntime(async () => (await import('./runtime/node.js')).nodeRuntime);

export * from './api.js';
