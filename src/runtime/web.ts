/**
 * The browser runtime: onnxruntime-web (WebAssembly; WebGPU where the browser has it and it is asked for).
 * It also runs in Node (the wasm backend), which is how it is tested there.
 *
 * The WebAssembly binary (`ort-wasm-simd-threaded.jsep.wasm`, about 28 MB) is fetched on the first session. The
 * bundle `build/browser/glassbox.js` has it beside itself and finds it there; serve it from elsewhere with
 * {@link setWasmPaths}.
 */
import * as ort from 'onnxruntime-web';
import { ortRuntime } from './ort.js';

export const webRuntime = ortRuntime(ort, 'onnxruntime-web', ['wasm']);

/** Threads of the WebAssembly backend (needs cross-origin isolation in browsers for more than one). */
export function setWasmThreads(n: number): void {
  ort.env.wasm.numThreads = n;
}

/**
 * Where onnxruntime-web fetches its WebAssembly files: a folder URL (ending in '/') holding the `ort-wasm-*.wasm`
 * files of onnxruntime-web 1.30's dist/, or the URL of the one `.wasm` file itself. Call it before the first model
 * loads.
 *
 * @example
 * setWasmPaths('https://example.org/static/ort/'); // fetches https://example.org/static/ort/ort-wasm-simd-threaded.jsep.wasm
 */
export function setWasmPaths(url: string | URL): void {
  const href = String(url);
  ort.env.wasm.wasmPaths = /\.wasm(?:[?#].*)?$/.test(href) ? { wasm: href } : href.endsWith('/') ? href : `${href}/`;
}
