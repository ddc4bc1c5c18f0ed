/**
 * Which runtime a Model uses when none is passed. The entry point sets it (index.ts: onnxruntime-node,
 * browser.ts: onnxruntime-web) so that neither package is loaded where it cannot run.
 */
import type { Runtime } from './runtime.js';

let loader: (() => Promise<Runtime>) | undefined;
let loaded: Promise<Runtime> | undefined;

export function setDefaultRuntime(load: Runtime | (() => Promise<Runtime>)): void {
  loader = typeof load === 'function' ? load : async () => load;
  loaded = undefined;
}

export function defaultRuntime(): Promise<Runtime> {
  if (!loader) throw new Error('no ONNX Runtime is set: import glassbox from its package entry, or pass { runtime } to Model.load');
  return (loaded ??= loader());
}
