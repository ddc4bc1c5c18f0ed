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
 * Where onnxruntime-web fetches its WebAssembly: either the URL of the `.wasm` file itself (the loader inside the bundle
 * is used), or a folder URL: then both the loader `ort-wasm-simd-threaded.jsep.mjs` and the binary
 * `ort-wasm-simd-threaded.jsep.wasm` come from there, as from onnxruntime-web 1.30's dist/ folder on a CDN.
 * Call it before the first model loads.
 *
 * @example
 * setWasmPaths('/static/ort-wasm-simd-threaded.jsep.wasm');
 * setWasmPaths('https://example.org/onnxruntime-web@1.30.0/dist/');
 */
export function setWasmPaths(url: string | URL): void {
  const href = String(url);
  ort.env.wasm.wasmPaths = /\.wasm(?:[?#].*)?$/.test(href) ? { wasm: href } : href.endsWith('/') ? href : `${href}/`;
}
