/**
 * What the hidden-unit methods (backprop rules, CAM, layer and neuron attribution) share: a result assembled from an
 * {@link Attributor}, a target handed from one attributor to another unchanged, a site's value along the straight path
 * from a baseline to each example, and the one-hot seed of a neuron.
 *
 * @example
 * const a = await Attributor.create(model, { x }, { target: 3 });
 * const { h } = await siteAlongPath(a, zeros, [0, 0.5, 1], '/c2/Conv_output_0', 0, a.n); // rows (i·3 + p) × |h|
 */
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Taxonomy } from '../taxonomy.js';
import { Attributor, attributionResult, gatherRows, rowScores } from './attributor.js';
import type { Attribution } from './explanation.js';
import type { Target } from './target.js';

/** An Attribution from an attributor's target and scores. */
export function assemble(a: Attributor, parts: Parameters<typeof attributionResult>[1]): Attribution {
  return attributionResult(a, parts);
}

/** A result of another method renamed as this one (its checks, scores and attributions kept). */
export function relabel(r: Attribution, method: string, taxonomy: Taxonomy, params: Record<string, unknown>, started: number): Attribution {
  return { ...r, method, taxonomy, params: { ...r.params, ...params }, ms: performance.now() - started };
}

/** The resolved target of `a` as a target option, so a second attributor explains exactly the same scores. */
export function sameTarget(a: Attributor): Target {
  return a.target.classes ? Array.from(a.target.classes) : { output: a.target.output, seed: a.target.seed };
}

/** The site's value name, checked to be float32. */
export function floatSite(model: Model, site: string | undefined, what: string): string {
  if (site === undefined) {
    const names = model.sites.filter((s) => s.op !== 'Input').map((s) => s.name);
    throw new Error(`${what}: name a hidden site with { site } (sites: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''})`);
  }
  const s = model.site(site); // unknown names list the nearest ones
  if (s.dtype !== undefined && s.dtype !== 'float32') throw new Error(`${what}: site '${site}' is ${s.dtype}; only float32 sites have gradients`);
  return s.value;
}

/** Examples per group so that a group's path values (P points, `perRow` floats each) fit the attributor's budget. */
export function examplesPerGroup(a: Attributor, points: number, perRow: number): number {
  const budget = a.options.maxBatchBytes ?? 256 * 2 ** 20;
  return Math.max(1, Math.floor(budget / Math.max(1, 8 * points * perRow)));
}

/**
 * The value of `site` (a value name of `a.runModel`) at b + α(x − b) for every α and every example in [i0, i1), in
 * rows (i − i0)·P + p, and the target scores there. One runtime call per group, split by the model to its budget.
 */
export async function siteAlongPath(
  a: Attributor,
  b: Float32Array,
  alphas: ArrayLike<number>,
  site: string,
  i0: number,
  i1: number,
): Promise<{ h: Float32Array; hSize: number; hShape: readonly number[]; scores: Float32Array }> {
  const P = alphas.length;
  const R = a.rowSize;
  const x = a.x.data;
  const total = (i1 - i0) * P;
  const rows = new Float32Array(total * R); // [G·P, ...x]
  const owner = new Int32Array(total);
  for (let r = 0; r < total; r++) {
    const i = i0 + Math.floor(r / P);
    const alpha = alphas[r % P];
    owner[r] = i;
    for (let j = 0; j < R; j++) rows[r * R + j] = b[i * R + j] + alpha * (x[i * R + j] - b[i * R + j]);
  }
  const target = a.target.output;
  const isOutput = a.runModel.outputs.some((o) => o.name === target);
  const capture = isOutput || target === site ? [site] : [site, target];
  const run = await a.runModel.run(a.feeds(rows, owner), { capture, maxBatchBytes: a.options.maxBatchBytes, signal: a.options.signal });
  const h = run.captures[site] as Tensor<'float32'>;
  if (h.dtype !== 'float32' || h.rank < 1 || h.shape[0] !== total) throw new Error(`path: site '${site}' is ${h.dtype} [${h.shape.join(', ')}], not float32 with one row per example`);
  const out = (isOutput ? run.outputs[target] : run.captures[target]) as Tensor<'float32'>;
  return { h: h.data, hSize: h.size / total, hShape: h.shape.slice(1), scores: rowScores(out, gatherRows(a.target.seed, owner)) };
}

/**
 * The one-hot seed [N, ...shape] of unit `neuron` of a value of one example's `shape`: a flat index, or one index
 * per axis. Returns the seed and the flat index.
 */
export function neuronSeed(neuron: number | readonly number[] | undefined, shape: readonly number[], n: number, site: string): { seed: Tensor<'float32'>; flat: number } {
  const size = shape.reduce((p, d) => p * d, 1);
  const where = `neuron of site '${site}' (one example's value is [${shape.join(', ')}])`;
  if (neuron === undefined) throw new Error(`${where}: name the unit with { neuron } (a flat index in [0, ${size}) or ${shape.length} indices)`);
  let flat: number;
  if (typeof neuron === 'number') {
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= size) throw new Error(`${where}: flat index ${neuron} is outside [0, ${size})`);
    flat = neuron;
  } else {
    if (neuron.length !== shape.length) throw new Error(`${where}: ${neuron.length} indices [${neuron.join(', ')}] for ${shape.length} axes`);
    flat = 0;
    neuron.forEach((k, ax) => {
      if (!Number.isInteger(k) || k < 0 || k >= shape[ax]) throw new Error(`${where}: index ${k} on axis ${ax} is outside [0, ${shape[ax]})`);
      flat = flat * shape[ax] + k;
    });
  }
  const seed = Tensor.zeros('float32', [n, ...shape]);
  for (let i = 0; i < n; i++) seed.data[i * size + flat] = 1;
  return { seed, flat };
}
