/** glassbox for browsers: the public API, with onnxruntime-web as the default runtime. */
import { setDefaultRuntime } from './runtime/default.js';

setDefaultRuntime(async () => (await import('./runtime/web.js')).webRuntime);

export * from './api.js';
export { setWasmThreads } from './runtime/web.js';
