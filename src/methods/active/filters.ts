/**
 * Interpretable filters (Zhang, Wu, Zhu, "Interpretable Convolutional Neural Networks", CVPR 2018): each filter of a
 * chosen conv layer should fire on one part at one place. For a filter's n×n map x, the n² positive templates
 * T_μ(i) = τ·max(1 − β‖i − μ‖₁/n, −1) (one per position μ) and one negative template T⁻ = −τ, with τ = ½/n², β = 4 and
 * priors p(T_μ) = α/n², p(T⁻) = 1 − α, α = n²/(1 + n²). Over the images X of a batch, p(x|T) = e^{tr(x·T)} / Z_T
 * (Z_T summing over X), p(x) = Σ_T p(T)·p(x|T), and the filter loss is −MI(X; T) = −Σ_T p(T) Σ_x p(x|T)·log(p(x|T) / p(x)),
 * averaged over the layer's filters. The paper's interpretable layer also masks each map by the template of its own
 * peak, x_masked = max(x ∘ M_μ̂, 0) with μ̂ = argmax x and M_μ(i) = max(1 − β‖i − μ‖₁/n, −1) (the peak's location is a
 * constant in the backward pass): `maskedFilters` inserts it after the site.
 *
 * Measured against the unregularised twin: network dissection of the layer's filters against concept masks (Bau et
 * al.: fraction with a label, mean best IoU), the peak concentration of each map (share of its positive mass within
 * the peak's template neighbourhood), the part consistency of each filter (how often the concept under its peak is its
 * most frequent one), and the accuracy cost.
 *
 * @example
 * const reg = interpretableFiltersRegularizer(cnn(...), { site: 'c2.relu', weight: 0.1 });
 * const t = await trainTwins(model, reg, { train, test, epochs: 2, batchSize: 64, seed: 1 });
 */
import type { ConceptDataset } from '../../data/datasets/concepts.js';
import { Model } from '../../model/model.js';
import type { LossTerm } from '../../model/train/index.js';
import { Graph } from '../../onnx/graph.js';
import { attr, encodeModel, makeNode, type ModelProto } from '../../onnx/proto.js';
import { interpose } from '../../onnx/rewrite.js';
import { tensorToProto } from '../../onnx/tensor-proto.js';
import { listSites, SiteIndex } from '../../model/sites.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { dissect } from '../neurons/dissection.js';
import { active, RAUKER_INTRINSIC, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { trainTwins, type Regularizer, type TwinOptions, type Twins } from './twin.js';

export interface TemplateOptions {
  /** Decay of a positive template with L1 distance (default 4, the paper's). */
  readonly beta?: number;
  /**
   * Template scale τ (default the paper's ½/n², tuned to VGG's activations of tens to hundreds; for activations of
   * order one, as in small networks, tr(x·T) is then ≈ 0, p(x|T) uniform and the loss inert: use a larger τ).
   */
  readonly tau?: number;
}

/** ‖i − μ‖₁ / n between positions i and μ of an h×w map (n = max(h, w)). */
function distance(i: number, mu: number, w: number, n: number): number {
  return (Math.abs(Math.floor(i / w) - Math.floor(mu / w)) + Math.abs((i % w) - (mu % w))) / n;
}

/**
 * The templates as a matrix [P, P + 1] (P = h·w positions): column μ < P is T_μ, column P is T⁻, so a map flattened
 * to [P] times the matrix gives tr(x·T) for every template. Also the log priors [P + 1].
 */
export function filterTemplates(h: number, w: number, options: TemplateOptions = {}): { matrix: Float32Array; logPrior: Float32Array } {
  const beta = options.beta ?? 4;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) throw new Error(`filter templates: map size must be positive integers, got ${h}×${w}`);
  if (!(beta > 0)) throw new Error(`filter templates: beta must be positive, got ${beta}`);
  const P = h * w;
  const n = Math.max(h, w);
  const tau = options.tau ?? 0.5 / P;
  if (!(tau > 0) || !Number.isFinite(tau)) throw new Error(`filter templates: tau must be positive, got ${tau}`);
  const alpha = P / (1 + P);
  const matrix = new Float32Array(P * (P + 1));
  for (let i = 0; i < P; i++) {
    for (let mu = 0; mu < P; mu++) matrix[i * (P + 1) + mu] = tau * Math.max(1 - beta * distance(i, mu, w, n), -1);
    matrix[i * (P + 1) + P] = -tau;
  }
  const logPrior = new Float32Array(P + 1).fill(Math.log(alpha / P));
  logPrior[P] = Math.log(1 - alpha);
  return { matrix, logPrior };
}

/** The masks M_μ as a table [P, P]: row μ is the mask of a map whose peak is at μ. */
export function filterMasks(h: number, w: number, options: TemplateOptions = {}): Float32Array {
  const beta = options.beta ?? 4;
  const P = h * w;
  const n = Math.max(h, w);
  const out = new Float32Array(P * P);
  for (let mu = 0; mu < P; mu++) for (let i = 0; i < P; i++) out[mu * P + i] = Math.max(1 - beta * distance(i, mu, w, n), -1);
  return out;
}

/** The filter loss −MI(X; T) of Zhang et al., averaged over the filters of a site [N, F, h, w], over the batch. */
export function filterLoss(options: { site: string; weight: number } & TemplateOptions): LossTerm {
  const { site, weight } = options;
  return {
    name: 'filter-mi',
    weight,
    build(b) {
      const x = b.site(site);
      const shape = b.info(x).shape ?? [];
      const [h, w] = [Number(shape[2]), Number(shape[3])];
      if (shape.length !== 4 || !(h >= 1 && w >= 1)) throw new Error(`filterLoss: site '${site}' must be a conv map [N, F, h, w] of known size, it is [${shape.join(', ')}]`);
      const P = h * w;
      const { matrix, logPrior } = filterTemplates(h, w, options);
      const flat = b.op('Reshape', [x, b.constant(Tensor.int64([0, 0, P]))]); // [N, F, P]
      const s = b.op('MatMul', [flat, b.constant(Tensor.float32(matrix, [P, P + 1]))]); // tr(x·T): [N, F, P+1]
      const logp = b.op('LogSoftmax', [s], [attr('axis', { int: 0 })]); // log p(x|T), normalised over the batch
      const joint = b.op('Add', [logp, b.constant(Tensor.float32(logPrior, [P + 1]))]); // log p(T) p(x|T)
      const axis2 = b.constant(Tensor.int64([2]));
      const keep = [attr('keepdims', { int: 1 })];
      const peak = b.op('ReduceMax', [joint], [attr('axes', { ints: [2] }), ...keep]); // opset 17: axes as an attribute
      const logpx = b.op('Add', [peak, b.op('Log', [b.op('ReduceSum', [b.op('Exp', [b.op('Sub', [joint, peak])]), axis2], keep)])]); // log p(x): [N, F, 1]
      const prior = b.constant(Tensor.float32(logPrior.map(Math.exp), [P + 1]));
      const terms = b.op('Mul', [b.op('Mul', [prior, b.op('Exp', [logp])]), b.op('Sub', [logp, logpx])]); // p(T) p(x|T) log(p(x|T)/p(x))
      const mi = b.op('ReduceSum', [terms, b.constant(Tensor.int64([0, 2]))], [attr('keepdims', { int: 0 })]); // [F]
      return b.op('Neg', [b.op('ReduceMean', [mi], [attr('keepdims', { int: 0 })])]);
    },
  };
}

/** The same loss on the host, in float64, for maps [N, F, h, w] (the reference the graph term is tested against). */
export function filterLossReference(maps: Float32Array, shape: readonly [number, number, number, number], options: TemplateOptions = {}): number {
  const [N, F, h, w] = shape;
  const P = h * w;
  const { matrix, logPrior } = filterTemplates(h, w, options);
  let total = 0;
  for (let f = 0; f < F; f++) {
    const s = Array.from({ length: N }, (_, i) => Array.from({ length: P + 1 }, (_, t) => {
      let v = 0;
      for (let p = 0; p < P; p++) v += maps[(i * F + f) * P + p] * matrix[p * (P + 1) + t];
      return v;
    }));
    const logZ = Array.from({ length: P + 1 }, (_, t) => Math.log(s.reduce((a, row) => a + Math.exp(row[t]), 0)));
    const logpx = s.map((row) => Math.log(row.reduce((a, v, t) => a + Math.exp(logPrior[t] + v - logZ[t]), 0)));
    let mi = 0;
    for (let t = 0; t <= P; t++) for (let i = 0; i < N; i++) mi += Math.exp(logPrior[t]) * Math.exp(s[i][t] - logZ[t]) * (s[i][t] - logZ[t] - logpx[i]);
    total += mi;
  }
  return -total / F;
}

/**
 * The model with Zhang et al.'s mask after a conv site [N, F, h, w]: each filter's map times the mask of its own peak,
 * then ReLU. The masked map is the site `<alias>.mask.relu` (e.g. `c2.mask.relu`), read by everything that read the site.
 */
export function maskedFilters(model: ModelProto, site: string, options: TemplateOptions & { size: readonly [number, number] }): { model: ModelProto; site: string } {
  const g = new Graph(model);
  const s = new SiteIndex(listSites(g)).get(site);
  const [h, w] = options.size;
  const P = h * w;
  const scope = `/${s.name.split('.').join('/')}/mask`;
  const alias = `${s.name}.mask.relu`;
  const table = filterMasks(h, w, options);
  const out = interpose(g, s.value, (source) => {
    const c = (name: string, t: Tensor) => makeNode('Constant', [], [`${scope}/${name}_output_0`], { name: `${scope}/${name}`, attributes: [attr('value', { tensor: tensorToProto(t) })] });
    const o = (op: string) => `${scope}/${op}_output_0`;
    const nodes = [
      c('Constant', Tensor.int64([0, 0, P])),
      c('Constant_1', Tensor.float32(table, [P, P])),
      makeNode('Shape', [source], [o('Shape')], { name: `${scope}/Shape` }),
      makeNode('Reshape', [source, o('Constant')], [o('Reshape')], { name: `${scope}/Reshape` }), // [N, F, P]
      makeNode('ArgMax', [o('Reshape')], [o('ArgMax')], { name: `${scope}/ArgMax`, attributes: [attr('axis', { int: 2 }), attr('keepdims', { int: 0 })] }), // μ̂: [N, F]
      makeNode('Gather', [o('Constant_1'), o('ArgMax')], [o('Gather')], { name: `${scope}/Gather`, attributes: [attr('axis', { int: 0 })] }), // M_μ̂: [N, F, P]
      makeNode('Mul', [o('Reshape'), o('Gather')], [o('Mul')], { name: `${scope}/Mul` }),
      makeNode('Reshape', [o('Mul'), o('Shape')], [o('Reshape_1')], { name: `${scope}/Reshape_1` }),
      makeNode('Relu', [o('Reshape_1')], [s.value], { name: `${scope}/Relu` }),
    ];
    return { nodes };
  });
  return { model: out.model, site: alias };
}

/**
 * For `glassbox train --regularize filters --site SITE [--weight λ] [--no-mask]`: the filter loss on SITE (a conv map
 * [N, F, h, w]; h, w from the recipe's model) and, unless `mask: false`, the model with the peak mask after SITE (the
 * loss then reads the masked map, as the paper's interpretable layer).
 */
export function interpretableFiltersRegularizer(model: ModelProto, options: { site: string; size: readonly [number, number]; weight?: number; mask?: boolean } & TemplateOptions): Regularizer {
  const weight = options.weight ?? 0.1;
  if (!(weight >= 0) || !Number.isFinite(weight)) throw new Error(`interpretable filters: weight must be a finite number ≥ 0, got ${weight}`);
  if (options.mask === false) return { terms: [filterLoss({ ...options, weight })] };
  const m = maskedFilters(model, options.site, options);
  return { model: m.model, terms: [filterLoss({ ...options, site: m.site, weight })] };
}

/**
 * The spatial size [h, w] of a conv site for inputs of one example's shape (what `maskedFilters` and the regulariser
 * need; `glassbox train --regularize filters --site SITE` reads it this way from the recipe's model).
 */
export async function siteSize(model: ModelProto, site: string, inputShape: readonly number[]): Promise<[number, number]> {
  const m = await Model.load(encodeModel(model));
  try {
    const input = m.inputs[0].name;
    const a = (await m.run({ [input]: Tensor.float32(new Float32Array(inputShape.reduce((x, y) => x * y, 1)), [1, ...inputShape]) }, { capture: [site] })).captures[site];
    if (a.shape.length !== 4) throw new Error(`interpretable filters: site '${site}' has shape [${a.shape.join(', ')}]; the filter loss needs a conv map [N, F, h, w]`);
    return [a.shape[2], a.shape[3]];
  } finally {
    await m.dispose();
  }
}

/** How one layer's filters read: dissection and peak statistics, over a concept dataset. */
export interface FilterScores {
  readonly site: string;
  readonly labelledFraction: number;
  /** Mean over filters of the best concept's IoU. */
  readonly meanIoU: number;
  /** Mean over filters and images (where the filter fires) of the share of positive mass within the peak's template. */
  readonly peakConcentration: number;
  /** Mean over filters of how often the concept under the peak (on its top images) is the filter's most frequent one. */
  readonly partConsistency: number;
  readonly labels: readonly (string | null)[];
  /** Distinct labels among the filters (a loss that makes every filter detect the same concept scores 1). */
  readonly uniqueLabels: number;
}

/**
 * Scores a conv site's filters. Part consistency looks at each filter's top `top` images (by peak value) and the
 * concepts whose mask covers the peak (the map's peak cell, upsampled to its centre pixel); image-level concepts
 * (names starting with `image:`) are left out, as they cover every pixel.
 */
export async function scoreFilters(model: Model, site: string, concepts: ConceptDataset, options: { top?: number; beta?: number; batchSize?: number; quantile?: number } = {}): Promise<FilterScores> {
  const d = await dissect(model, site, concepts, { randomUnits: 0, randomInit: false, quantile: options.quantile ?? 0.02 });
  const top = options.top ?? 20;
  const beta = options.beta ?? 4;
  const input = model.inputs[0].name;
  const [H, W] = concepts.maskShape;
  const parts = concepts.conceptNames.map((n, c) => [n, c] as const).filter(([n]) => !n.startsWith('image:'));
  let conc = 0;
  let fired = 0;
  const peaks: { value: number; image: number; pixel: number }[][] = [];
  for (const b of concepts.batches(options.batchSize ?? 64)) {
    const a = (await model.run({ [input]: b.x }, { capture: [site] })).captures[site];
    const [N, F, h, w] = a.shape;
    const P = h * w;
    const data = a.data as Float32Array;
    for (let i = 0; i < N; i++) {
      for (let f = 0; f < F; f++) {
        const m = data.subarray((i * F + f) * P, (i * F + f + 1) * P);
        let arg = 0;
        let mass = 0;
        for (let p = 0; p < P; p++) {
          if (m[p] > m[arg]) arg = p;
          if (m[p] > 0) mass += m[p];
        }
        if (!(m[arg] > 0)) continue;
        let near = 0;
        for (let p = 0; p < P; p++) if (m[p] > 0 && distance(p, arg, w, Math.max(h, w)) * beta < 1) near += m[p];
        conc += near / mass;
        fired++;
        const [py, px] = [Math.min(H - 1, Math.floor(((Math.floor(arg / w) + 0.5) * H) / h)), Math.min(W - 1, Math.floor((((arg % w) + 0.5) * W) / w))];
        (peaks[f] ??= []).push({ value: m[arg], image: b.indices[i], pixel: py * W + px });
      }
    }
  }
  const consistency = d.units.map((_, f) => {
    const best = (peaks[f] ?? []).sort((a, b) => b.value - a.value).slice(0, top);
    if (best.length === 0) return 0;
    const counts = new Map<number, number>();
    for (const p of best) {
      const masks = concepts.masks(p.image);
      for (const [, c] of parts) if ((masks[c][p.pixel >> 3] >> (p.pixel & 7)) & 1) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    return Math.max(0, ...counts.values()) / best.length;
  });
  return {
    site,
    labelledFraction: d.labelledFraction,
    meanIoU: d.units.reduce((a, u) => a + u.iou, 0) / d.units.length,
    peakConcentration: fired ? conc / fired : 0,
    partConsistency: consistency.reduce((a, b) => a + b, 0) / consistency.length,
    labels: d.units.map((u) => u.label),
    uniqueLabels: new Set(d.units.flatMap((u) => (u.label === null ? [] : [u.label]))).size,
  };
}

export interface InterpretableFilters {
  readonly method: 'interpretable-filters';
  readonly taxonomy: Taxonomy;
  readonly site: string;
  readonly twins: Twins;
  /** The regularised model's masked map (or the site, without the mask), and the twin's site. */
  readonly scores: FilterScores;
  readonly twinScores: FilterScores;
  readonly accuracyCost: number;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

/** Trains a CNN with interpretable filters at `site` and its twin, and scores both layers on the concept dataset. */
export async function trainInterpretableFilters(model: ModelProto, concepts: ConceptDataset, options: TwinOptions & { site: string; size?: readonly [number, number]; weight?: number; mask?: boolean } & TemplateOptions): Promise<InterpretableFilters> {
  const t0 = performance.now();
  const size = options.size ?? (await siteSize(model, options.site, concepts.inputShape));
  const reg = interpretableFiltersRegularizer(model, { ...options, size });
  const twins = await trainTwins(model, reg, options);
  const site = options.mask === false ? options.site : `${new SiteIndex(listSites(new Graph(model))).get(options.site).name}.mask.relu`;
  const scores = await scoreFilters(twins.regularized.model, site, concepts, { beta: options.beta });
  const twinScores = await scoreFilters(twins.twin.model, options.site, concepts, { beta: options.beta });
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const cmp = (name: string, key: 'labelledFraction' | 'meanIoU' | 'peakConcentration' | 'partConsistency', fmt: (x: number) => string, what: string): Check => ({
    name,
    value: scores[key] - twinScores[key],
    passed: scores[key] > twinScores[key],
    detail: `${what}: ${fmt(scores[key])} with the filter loss (${site}) vs ${fmt(twinScores[key])} for the twin (${options.site})`,
  });
  const checks: Check[] = [
    ...twins.checks,
    cmp('labelled filters', 'labelledFraction', pct, 'filters with a dissection label (IoU > 0.04)'),
    cmp('mean best IoU', 'meanIoU', (x) => x.toFixed(3), "mean over filters of the best concept's dissection IoU"),
    cmp('peak concentration', 'peakConcentration', pct, "share of each map's positive mass within its peak's template neighbourhood"),
    cmp('part consistency', 'partConsistency', pct, "how often the concept under a filter's peak (top images) is its most frequent one"),
    { name: 'distinct labels', value: scores.uniqueLabels - twinScores.uniqueLabels, detail: `${scores.uniqueLabels} distinct concepts label the filters with the loss, ${twinScores.uniqueLabels} the twin's (a loss may make every filter detect the same concept)` },
  ];
  return {
    method: 'interpretable-filters',
    taxonomy: INTERPRETABLE_FILTER_METHODS['interpretable-filters'].info.taxonomy,
    site,
    twins,
    scores,
    twinScores,
    accuracyCost: twins.accuracyCost,
    checks,
    params: { site: options.site, weight: options.weight ?? 0.1, mask: options.mask !== false, beta: options.beta ?? 4, size, tau: options.tau ?? 0.5 / (size[0] * size[1]), epochs: options.epochs, batchSize: options.batchSize, seed: options.seed, concepts: concepts.name },
    ms: performance.now() - t0,
  };
}

export const INTERPRETABLE_FILTER_METHODS = {
  'interpretable-filters': {
    info: {
      title: 'Interpretable convolutional filters (filter loss and peak masks)',
      reference: 'Zhang, Wu, Zhu 2018, Interpretable Convolutional Neural Networks',
      taxonomy: active('hidden semantics', 'global', RAUKER_INTRINSIC.interpretableFilters),
    },
    run: trainInterpretableFilters,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
