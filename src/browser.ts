/**
 * glassbox for browsers: the public API, with onnxruntime-web as the default runtime.
 * `build/browser/glassbox.js` (npm run build:browser) is this module bundled for a page, with onnxruntime-web inside
 * and its .wasm beside it. Models load from bytes; reading a path (`Model.load('x.onnx')`, readNpy, readPng) is
 * Node-only.
 */
import { setDefaultRuntime } from './runtime/default.js';

setDefaultRuntime(async () => (await import('./runtime/web.js')).webRuntime);

export * from './api.js';
export { setWasmThreads, setWasmPaths } from './runtime/web.js';
