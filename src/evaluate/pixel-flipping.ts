/**
 * Region perturbation (Samek, Binder, Montavon, Lapuschkin, Müller 2017, "Evaluating the visualization of what a Deep
 * Neural Network has learned", IEEE TNNLS): regions (non-overlapping patches, or the groups of a feature mask) are
 * ranked by summed attribution and perturbed one per step, most relevant first (MoRF) or least relevant first (LeRF):
 * x⁽⁰⁾ = x, x⁽ᵏ⁾ = x⁽ᵏ⁻¹⁾ with region r_k replaced. Replacement is uniform noise (the paper's choice; seeded, drawn
 * once per example over its value range) or a constant. Reported per example:
 *
 *   AOPC = 1/(L+1) Σ_{k=0..L} (f(x⁽⁰⁾) − f(x⁽ᵏ⁾))
 *
 * High MoRF AOPC (the score falls fast when the most relevant regions go) and low LeRF AOPC mean a faithful map.
 *
 * @example
 * const gxi = await gradientXInput(model, { x }, { target: 3 });
 * const morf = await pixelFlipping(model, { x }, gxi, { order: 'morf', patch: [4, 4], regions: 49 });
 * morf.values; // AOPC per example; morf.curve.scores: f(x⁽ᵏ⁾), k = 0..L
 */
import { Attributor } from '../methods/attribution/attributor.js';
import type { Attribution } from '../methods/attribution/explanation.js';
import { mixSeed, mulberry32 } from '../data/datasets/random.js';
import type { Model } from '../model/model.js';
import { featureGroups, perturbationCurve, rankGroups, type GroupSpec } from './curve.js';
import { checkAttributionShape, mean, positiveInt, targetOf, type Evaluation, type Inputs, type MetricBaseOptions } from './evaluation.js';

export interface PixelFlippingOptions extends MetricBaseOptions, GroupSpec {
  /** 'morf' (default) or 'lerf'. */
  readonly order?: 'morf' | 'lerf';
  /** Perturbation steps L (default min(regions available, 100), the paper's 100). */
  readonly regions?: number;
  /** 'uniform' noise (default) or a constant. */
  readonly fill?: number | 'uniform';
  /** Range of the uniform noise (default each example's [min, max]). */
  readonly range?: readonly [number, number];
  readonly seed?: number;
  /** Rank regions by summed |attribution| (default false: the signed sum). */
  readonly abs?: boolean;
}

/**
 * Regions default to square patches of side max(1, round(min(H, W) / 16)) over all channels for images [C, H, W] (the
 * paper's 9 × 9 on 224 × 224 is 1/25; this is coarser so small images get enough steps), else single values.
 */
export function defaultRegions(rowShape: readonly number[]): number[] {
  if (rowShape.length < 3) return rowShape.map(() => 1);
  const side = Math.max(1, Math.round(Math.min(...rowShape.slice(-2)) / 16));
  return [side, side];
}

/** MoRF or LeRF perturbation curves and AOPC per example. */
export async function pixelFlipping(model: Model, inputs: Inputs, attribution: Attribution, options: PixelFlippingOptions = {}): Promise<Evaluation> {
  const started = performance.now();
  const order = options.order ?? 'morf';
  if (order !== 'morf' && order !== 'lerf') throw new Error(`pixel flipping: order must be 'morf' or 'lerf', got '${String(order)}'`);
  const a = await Attributor.create(model, inputs, { ...options, wrt: options.wrt ?? attribution.wrt, target: targetOf(attribution, options.target) });
  const attr = checkAttributionShape(order, attribution, a.x.shape);
  const patch = options.patch ?? defaultRegions(a.rowShape);
  const groups = featureGroups(a.rowShape, { patch, featureMask: options.featureMask }, order);
  const L = positiveInt(order, 'regions', options.regions ?? Math.min(groups.count, 100));
  if (L > groups.count) throw new Error(`${order}: regions (${L}) exceeds the ${groups.count} regions of an example`);
  const fill = options.fill ?? 'uniform';
  const other = fillRows(order, a.x.data, a.n, a.rowSize, fill, options.range, options.seed ?? 0);
  const ranked = rankGroups(attr, groups, a.n, order === 'morf' ? 'descending' : 'ascending', options.abs ?? false);
  const counts = Array.from({ length: L + 1 }, (_, k) => k);
  const scores = await perturbationCurve(a, { start: a.x.data, other, groups, order: ranked, counts });
  const values = scores.map((y) => y.reduce((s, v) => s + (y[0] - v), 0) / (L + 1));
  return {
    metric: order,
    method: attribution.method,
    values,
    mean: mean(values),
    higherIsBetter: order === 'morf',
    curve: { x: counts, scores },
    checks: [],
    params: { regions: L, available: groups.count, patch: options.featureMask ? 'featureMask' : patch, fill, range: options.range ?? 'example min..max', seed: options.seed ?? 0, abs: options.abs ?? false },
    ms: performance.now() - started,
  };
}

/** What perturbed values become, [N·R]: a constant, or uniform noise drawn per example (independent of batching). */
function fillRows(metric: string, x: Float32Array, n: number, R: number, fill: number | 'uniform', range: readonly [number, number] | undefined, seed: number): Float32Array {
  if (typeof fill === 'number') {
    if (!Number.isFinite(fill)) throw new Error(`${metric}: fill must be finite or 'uniform', got ${fill}`);
    return new Float32Array(n * R).fill(fill);
  }
  if (fill !== 'uniform') throw new Error(`${metric}: fill must be a number or 'uniform', got ${JSON.stringify(fill)}`);
  if (range && !(Number.isFinite(range[0]) && Number.isFinite(range[1]) && range[0] <= range[1])) throw new Error(`${metric}: range must be [lo, hi] with lo ≤ hi, got [${range.join(', ')}]`);
  if (!Number.isInteger(seed)) throw new Error(`${metric}: seed must be an integer, got ${seed}`);
  const out = new Float32Array(n * R);
  for (let i = 0; i < n; i++) {
    let [lo, hi] = range ?? [Infinity, -Infinity];
    if (!range) for (let j = 0; j < R; j++) [lo, hi] = [Math.min(lo, x[i * R + j]), Math.max(hi, x[i * R + j])];
    const rand = mulberry32(mixSeed(seed, i));
    for (let j = 0; j < R; j++) out[i * R + j] = lo + (hi - lo) * rand();
  }
  return out;
}
