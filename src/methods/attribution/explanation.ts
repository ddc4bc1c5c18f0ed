/**
 * The one result type of every attribution method: the attributions, what they explain (target, score) and the
 * checks that test them. A method never changes its return type with a flag; optional evidence goes in `checks` and
 * `extra`.
 */
import type { Tensor } from '../../runtime/tensor.js';
import type { Taxonomy } from '../taxonomy.js';

/** A piece of evidence about an explanation, with whether it passed where there is a criterion. */
export interface Check {
  readonly name: string;
  /** One number, or one per example. */
  readonly value: number | readonly number[];
  /** Undefined where the check is a measurement without a pass criterion. */
  readonly passed?: boolean;
  readonly detail: string;
}

export interface Attribution {
  readonly method: string;
  readonly taxonomy: Taxonomy;
  /** The input or site attributed to. */
  readonly wrt: string;
  /** float32, the shape of `wrt`'s value for the batch ([N, ...]). */
  readonly attributions: Tensor<'float32'>;
  /** The output explained and, for class targets, the class of each example (null for a custom seed). */
  readonly output: string;
  readonly targets: Int32Array | null;
  /** The explained score f(x) of each example: Σ output ⊙ seed. */
  readonly scores: Float32Array;
  readonly checks: readonly Check[];
  /** The settings the method ran with (steps, baseline kind, samples, seed…), for the record. */
  readonly params: Readonly<Record<string, unknown>>;
  /** Method-specific results beyond the attributions (surrogate coefficients, per-sample values…). */
  readonly extra?: Readonly<Record<string, Tensor | readonly number[] | number>>;
  /** Wall time of the call in milliseconds. */
  readonly ms: number;
}

/** Per-example sums of the attributions ([N, ...] → N numbers). */
export function sumPerExample(t: Tensor<'float32'>): Float64Array {
  const n = t.shape[0] ?? 1;
  const row = n === 0 ? 0 : t.size / n;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < row; j++) s += t.data[i * row + j];
    out[i] = s;
  }
  return out;
}

/**
 * Completeness (Sundararajan et al. 2017; "summation to delta", Shrikumar et al. 2017): Σ attributions vs
 * f(x) − f(baseline) per example. Reports the worst |delta| relative to max(1, |f(x) − f(baseline)|).
 */
export function completenessCheck(attributions: Tensor<'float32'>, scores: ArrayLike<number>, baselineScores: ArrayLike<number>, tolerance = 0.05): Check {
  const sums = sumPerExample(attributions);
  const deltas = Array.from(sums, (s, i) => s - (scores[i] - baselineScores[i]));
  const worst = Math.max(0, ...deltas.map((d, i) => Math.abs(d) / Math.max(1, Math.abs(scores[i] - baselineScores[i]))));
  return {
    name: 'completeness',
    value: deltas,
    passed: worst <= tolerance,
    detail: `Σ attributions − (f(x) − f(baseline)) per example; worst relative |delta| ${worst.toPrecision(3)} (tolerance ${tolerance})`,
  };
}
