/**
 * The one result type of every evaluation metric, and what metrics share: the attribution method under test (a
 * function or a registry name), running it, and reading an attribution's target back so the metric scores the same
 * scalar the attribution explains.
 *
 * @example
 * const attr = await explainWith('integrated-gradients', model, { x }, { target: 3 });
 * const target = targetOf(attr); // [3, 3, …]: the metric scores class 3 of every example
 */
import type { Model } from '../model/model.js';
import type { AttributionOptions } from '../methods/attribution/attributor.js';
import type { Attribution, Check } from '../methods/attribution/explanation.js';
import type { ExplainOptions } from '../methods/attribution/method.js';
import type { Target } from '../methods/attribution/target.js';
import { attributionMethod, type AttributionMethodName } from '../methods/registry.js';
import type { Tensor } from '../runtime/tensor.js';

export type Inputs = Readonly<Record<string, Tensor>>;

/** An attribution method: a registry name, or any function with the methods' signature. */
export type MethodRef = AttributionMethodName | ((model: Model, inputs: Inputs, options: ExplainOptions) => Promise<Attribution>);

export interface Evaluation {
  /** The metric's registry name ('deletion', 'morf', …). */
  readonly metric: string;
  /** The attribution method evaluated (its `Attribution.method`). */
  readonly method: string;
  /** One value per example. */
  readonly values: readonly number[];
  /** Their mean: the number a benchmark table reports. */
  readonly mean: number;
  readonly higherIsBetter: boolean;
  /** Curve metrics: the x-axis (fraction perturbed, or step) and each example's scores along it. */
  readonly curve?: { readonly x: readonly number[]; readonly scores: readonly (readonly number[])[] };
  readonly checks: readonly Check[];
  /** The settings the metric ran with, for the record. */
  readonly params: Readonly<Record<string, unknown>>;
  /** Metric-specific per-example results beyond `values`. */
  readonly extra?: Readonly<Record<string, readonly number[] | number>>;
  /** Wall time of the metric (without the attribution it was given) in milliseconds. */
  readonly ms: number;
}

/** Options every metric takes: which score, which value, how large a runtime call may be. */
export type MetricBaseOptions = Pick<AttributionOptions, 'target' | 'wrt' | 'maxBatchBytes' | 'signal' | 'onProgress'>;

/** Runs `method` (a registry name or a function) with the given options. */
export function explainWith(method: MethodRef, model: Model, inputs: Inputs, options: ExplainOptions): Promise<Attribution> {
  if (typeof method === 'function') return method(model, inputs, options);
  return attributionMethod(method).explain(model, inputs, options);
}

/**
 * The target a metric must score: the caller's, else the classes the attribution explains. An attribution of a
 * custom seed does not carry its seed, so the caller must pass it again.
 */
export function targetOf(attribution: Attribution, given?: Target): Target {
  if (given !== undefined) return given;
  if (attribution.targets === null) {
    throw new Error(`evaluate: the ${attribution.method} attribution explains a custom seed, which it does not carry; pass the same { target } to the metric`);
  }
  return Array.from(attribution.targets);
}

/** An attribution tensor checked against the examples' value at `wrt` ([N, ...] both). */
export function checkAttributionShape(metric: string, attribution: Attribution, xShape: readonly number[]): Float32Array {
  const t = attribution.attributions;
  if (t.dtype !== 'float32' || t.shape.join() !== xShape.join()) {
    throw new Error(`${metric}: the ${attribution.method} attributions are ${t.dtype} [${t.shape.join(', ')}], the examples at '${attribution.wrt}' are float32 [${xShape.join(', ')}]`);
  }
  for (let i = 0; i < t.size; i++) if (!Number.isFinite(t.data[i])) throw new Error(`${metric}: the ${attribution.method} attributions hold NaN or infinity (value ${i})`);
  return t.data;
}

export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return values.length === 0 ? NaN : s / values.length;
}

/** A positive integer option, or an error naming the metric and the option. */
export function positiveInt(metric: string, name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${metric}: ${name} must be a positive integer, got ${v}`);
  return v;
}

/** Row owners start, start+1, … (one row per example). */
export const ownRows = (start: number, end: number): Int32Array => Int32Array.from({ length: end - start }, (_, i) => start + i);

/** A standard normal draw (Box–Muller) from a uniform stream. */
export function gauss(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}
