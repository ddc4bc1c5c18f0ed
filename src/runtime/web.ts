/** The browser runtime: onnxruntime-web (WebAssembly; WebGPU where the browser has it and it is asked for). */
import * as ort from 'onnxruntime-web';
import { ortRuntime } from './ort.js';

export const webRuntime = ortRuntime(ort, 'onnxruntime-web', ['wasm']);

/** Threads of the WebAssembly backend (needs cross-origin isolation in browsers for more than one). */
export function setWasmThreads(n: number): void {
  ort.env.wasm.numThreads = n;
}
