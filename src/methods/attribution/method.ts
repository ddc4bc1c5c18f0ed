/**
 * A registry entry of an attribution method: what it is (title, paper, taxonomy, whether it claims completeness,
 * whether it samples) and one uniform call. Every entry takes the same options, so the CLI, the shared axiom tests
 * and the evaluation metrics can run any method by name; method-specific knobs not listed here keep their defaults.
 */
import type { Model } from '../../model/model.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { MethodInfo } from '../taxonomy.js';
import type { AttributionOptions } from './attributor.js';
import type { Baseline } from './baseline.js';
import type { Attribution } from './explanation.js';

export interface ExplainOptions extends AttributionOptions {
  /** Path points (integrated gradients and the methods built on it). */
  readonly steps?: number;
  readonly baseline?: Baseline;
  /** Samples of sampling methods (SmoothGrad copies, Shapley permutations, LIME/KernelSHAP perturbations). */
  readonly samples?: number;
  /** Seed of sampling methods. */
  readonly seed?: number;
  /** Perturbation window and stride per axis of one example (occlusion). */
  readonly window?: readonly number[];
  readonly stride?: readonly number[];
  /** Feature groups: an integer id per value of one example (superpixels, patches), [1, ...] or [N, ...]. */
  readonly featureMask?: Tensor;
  /** The site of layer, neuron and CAM methods. */
  readonly site?: string;
  /** The unit of neuron methods: an index into one example's value at `site` (flat, or per axis). */
  readonly neuron?: number | readonly number[];
}

export interface MethodEntry {
  readonly info: MethodInfo;
  readonly explain: (model: Model, inputs: Readonly<Record<string, Tensor>>, options: ExplainOptions) => Promise<Attribution>;
}
