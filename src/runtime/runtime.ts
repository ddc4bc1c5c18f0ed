/**
 * The one interface glassbox talks to for tensor work. Implementations wrap an ONNX Runtime package
 * (onnxruntime-node, onnxruntime-web); nothing above this layer imports a runtime package.
 */
import type { Tensor } from './tensor.js';

export type OptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** Threads for one op (ONNX Runtime's intra-op pool); default: the runtime's own choice (all cores). */
  readonly threads?: number;
  /**
   * Graph optimisation level. glassbox defaults to 'disabled' ("exact"): ONNX Runtime's fusions change the last bits
   * of results depending on which values are exposed, so only without them does capturing a value leave every other
   * value bit-identical. 'all' is faster and may differ in the last bits between variants.
   */
  readonly optimization?: OptimizationLevel;
  /**
   * Let idle pool threads spin-wait for the next op (ONNX Runtime's default). glassbox turns it off: a model holds
   * several sessions (plain, probe, one per variant), and threads spinning in one steal the cores of the next.
   */
  readonly spinWait?: boolean;
  /** Execution providers in order of preference, e.g. ['cuda', 'cpu'] or ['webgpu', 'wasm']. */
  readonly executionProviders?: readonly string[];
}

export interface RuntimeSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the graph; `fetches` defaults to every output. */
  run(feeds: Readonly<Record<string, Tensor>>, fetches?: readonly string[]): Promise<Record<string, Tensor>>;
  release(): Promise<void>;
}

export interface Runtime {
  readonly name: string;
  createSession(model: Uint8Array, options?: SessionOptions): Promise<RuntimeSession>;
}
