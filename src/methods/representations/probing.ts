/**
 * Probing classifiers (Alain & Bengio 2016; Belinkov 2022, "Probing Classifiers: Promises, Shortcomings, and
 * Advances"): train a small model to read a property off a site's activations and report its held-out accuracy, with
 * the controls that make the number mean something:
 * - a control task (Hewitt & Liang 2019, "Designing and Interpreting Probes with Control Tasks"): every input type gets
 *   a random but fixed label drawn from the empirical label distribution, the same probe is trained on those labels,
 *   and selectivity = accuracy − control accuracy. Types are the input token at the position for token models (word
 *   types, as in the paper) and, for images, clusters of near-identical inputs: k-means (k = examples / 5 by default)
 *   on the inputs average-pooled to at most 7 × 7 per channel, so a probe that memorises input identity gains on the
 *   control task as it would by memorising word types;
 * - a random-network baseline: the same probe on the same site of the architecture re-initialised (every layer, see
 *   randomizedCopy), which separates what training put there from what the architecture gives for free;
 * - the majority baseline on held-out rows.
 * Räuker et al. 2023 V (probing); Zhang et al. 2021: passive, hidden semantics, global.
 *
 * Rows are examples for [N, D] and conv sites ([N, C, H, W] reduced by the spatial mean per channel, or flattened),
 * and tokens for [N, T, D] sites. The held-out split is by example (a window's tokens stay together), seeded.
 * Softmax and MLP probes train as ONNX graphs by the project's Trainer (faster than the host loop on 10k × 512,
 * bench/probe.ts); ridge is closed-form on the host (linear-models.ts).
 *
 * @example
 * const r = await probe(model, (await loadMnist('test')).slice(0, 2000), { site: 'c2.relu', kind: 'softmax' });
 * r.test; r.control?.test; r.selectivity; r.randomNetwork?.test; r.checks;
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mixSeed, mulberry32, permutation } from '../../data/datasets/random.js';
import { parameterLayers, randomizedCopy } from '../../evaluate/sanity/reinit.js';
import type { Model } from '../../model/model.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { kmeans } from '../attribution/global/kmeans.js';
import { passive, RAUKER_V, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { accuracy, fitMlp, fitRidge, fitSoftmax, rSquared, type FittedProbe, type TrainOptions } from './linear-models.js';

export type ProbeKind = 'softmax' | 'ridge' | 'mlp';
/** A value per row: by example index and position (0 for per-example sites). NaN (or < 0 for classes) drops the row. */
export type RowValues = ArrayLike<number> | ((example: number, position: number) => number);

export interface ProbeOptions extends TrainOptions {
  /** Site to probe (alias or raw value name). */
  readonly site: string;
  /** Targets per example ([N]) or per token ([N·T], example-major), or a function; default: the dataset's labels. */
  readonly labels?: RowValues;
  readonly kind?: ProbeKind;
  /** 'class' (default) or 'continuous' (ridge only, scored by R²). */
  readonly target?: 'class' | 'continuous';
  /** Held-out fraction of the examples (default 0.25). */
  readonly split?: number;
  /** Train the control task (default true). */
  readonly control?: boolean;
  /** Probe the re-initialised network too (default true). */
  readonly randomBaseline?: boolean;
  /** Control-task types per row (default: the input token, or input clusters for float inputs). */
  readonly types?: RowValues;
  /** Clusters of inputs for the default image types (default ceil(examples / 5)). */
  readonly clusters?: number;
  /** Conv sites: spatial mean per channel (default) or every value. */
  readonly pool?: 'mean' | 'flatten';
  /** Examples per capture run (default 256). */
  readonly captureBatch?: number;
  /** The model input the dataset's x feeds (default: the only input). */
  readonly input?: string;
  readonly onProgress?: (p: { stage: string; done: number; total: number }) => void;
}

export interface ProbeResult {
  readonly method: 'probe';
  readonly taxonomy: Taxonomy;
  readonly site: string;
  readonly kind: ProbeKind;
  readonly metric: 'accuracy' | 'r2';
  readonly features: number;
  readonly rows: { readonly train: number; readonly test: number };
  /** Classes (0 for a continuous target). */
  readonly classes: number;
  readonly train: number;
  /** Held-out accuracy (or R²). */
  readonly test: number;
  /** Held-out score of the majority class of the training rows (or of their mean target). */
  readonly majority: number;
  readonly control: { readonly train: number; readonly test: number; readonly types: number } | null;
  /** test − control.test. */
  readonly selectivity: number | null;
  readonly randomNetwork: { readonly train: number; readonly test: number } | null;
  /** Linear probes: weights [features, classes] and bias on raw features. */
  readonly weights?: Float64Array;
  readonly bias?: Float64Array;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

export interface ProbeLayersResult {
  readonly method: 'probe-layers';
  readonly sites: readonly ProbeResult[];
  /** The site with the highest held-out score. */
  readonly best: string;
  readonly checks: readonly Check[];
  readonly ms: number;
}

const TAXONOMY = passive('hidden semantics', 'global', RAUKER_V.probing);

/** One probe at one site; see the module comment. */
export async function probe(model: Model, data: Dataset, options: ProbeOptions): Promise<ProbeResult> {
  const { site, ...rest } = options;
  return (await probeSites(model, data, [site], rest))[0];
}

/** The same probe at every site of `sites` (one capture pass), e.g. a layer sweep. */
export async function probeLayers(model: Model, data: Dataset, options: Omit<ProbeOptions, 'site'> & { readonly sites: readonly string[] }): Promise<ProbeLayersResult> {
  const t0 = performance.now();
  const { sites, ...rest } = options;
  if (sites.length === 0) throw new Error('probe-layers: give at least one site');
  const results = await probeSites(model, data, sites, rest);
  const best = results.reduce((a, b) => (b.test > a.test ? b : a));
  const checks: Check[] = [
    { name: 'best site', value: best.test, detail: `highest held-out ${best.metric} at ${best.site}: ${best.test.toFixed(4)}` },
    {
      name: 'selective somewhere',
      value: results.map((r) => r.selectivity ?? NaN),
      passed: results.some((r) => r.selectivity !== null) ? results.some((r) => (r.selectivity ?? 0) > 0) : undefined,
      detail: `selectivity per site (${results.map((r) => `${r.site} ${r.selectivity?.toFixed(3) ?? '—'}`).join(', ')}); passes when some site is above 0`,
    },
  ];
  return { method: 'probe-layers', sites: results, best: best.site, checks, ms: performance.now() - t0 };
}

/** Site features for every row: [rows, features] per site, rows = examples × positions. */
interface Captured {
  readonly features: Float32Array[];
  readonly widths: number[];
  readonly positions: number;
  /** Input token per row (int64 inputs), or pooled inputs per example (float inputs), for the control types. */
  readonly tokens?: Int32Array;
  readonly pooled?: Float64Array;
  readonly pooledWidth: number;
}

async function capture(model: Model, data: Dataset, sites: readonly string[], o: Omit<ProbeOptions, 'site'>, keepInputs: boolean, stage: string): Promise<Captured> {
  const input = o.input ?? soleInput(model);
  const batch = o.captureBatch ?? 256;
  const chunks: Float32Array[][] = sites.map(() => []);
  const widths: number[] = [];
  let positions = -1;
  const tokens: number[] = [];
  const pooled: number[] = [];
  let pooledWidth = 0;
  let done = 0;
  for (const b of data.batches(batch)) {
    const { captures } = await model.run({ [input]: b.x }, { capture: sites });
    sites.forEach((s, i) => {
      const { width, values, perExample } = rowsOf(s, captures[s], o.pool ?? 'mean');
      if (widths[i] === undefined) widths[i] = width;
      if (positions < 0) positions = perExample;
      if (perExample !== positions) throw new Error(`probe: site '${s}' has ${perExample} positions per example, another site ${positions}; sweep sites of one kind (per example, or per token of one length)`);
      if (widths[i] !== width) throw new Error(`probe: site '${s}' changed width between batches (${widths[i]}, then ${width})`);
      chunks[i].push(values);
    });
    if (keepInputs) {
      if (b.x.dtype === 'int64') {
        if (b.x.size !== b.indices.length * positions) throw new Error(`probe: token inputs [${b.x.shape}] do not line up with ${positions} positions per example`);
        for (const t of b.x.data as BigInt64Array) tokens.push(Number(t));
      } else {
        const p = poolInput(b.x);
        pooledWidth = p.width;
        for (const v of p.values) pooled.push(v);
      }
    }
    done += b.indices.length;
    o.onProgress?.({ stage, done, total: data.size });
  }
  const features = chunks.map((c, i) => {
    const out = new Float32Array(c.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of c) {
      out.set(x, at);
      at += x.length;
    }
    if (out.length !== data.size * positions * widths[i]) throw new Error(`probe: site '${sites[i]}' gave ${out.length} values for ${data.size} examples`);
    return out;
  });
  return { features, widths, positions: Math.max(positions, 1), ...(tokens.length ? { tokens: Int32Array.from(tokens) } : {}), ...(pooled.length ? { pooled: Float64Array.from(pooled) } : {}), pooledWidth };
}

function soleInput(model: Model): string {
  if (model.inputs.length !== 1) throw new Error(`probe: the model takes ${model.inputs.map((i) => i.name).join(', ')}; say which one the dataset feeds (option input)`);
  return model.inputs[0].name;
}

/** A captured value as probe rows: [N, D] → N × D; [N, T, D] → N·T × D; [N, C, ...] → N × C (mean) or N × C·… (flatten). */
function rowsOf(site: string, t: Tensor, pool: 'mean' | 'flatten'): { width: number; values: Float32Array; perExample: number } {
  if (t.dtype !== 'float32') throw new Error(`probe: site '${site}' holds ${t.dtype}; probes read float32 activations`);
  const data = t.data as Float32Array;
  const [n, ...rest] = t.shape;
  if (rest.length === 0) throw new Error(`probe: site '${site}' has shape [${t.shape}]; it needs a batch and a feature axis`);
  if (rest.length === 2) return { width: rest[1], values: data.slice(), perExample: rest[0] };
  const size = rest.reduce((a, b) => a * b, 1);
  if (rest.length === 1 || pool === 'flatten') return { width: size, values: data.slice(), perExample: 1 };
  const c = rest[0];
  const area = size / c;
  const values = new Float32Array(n * c); // [N, C]
  for (let i = 0; i < n * c; i++) {
    let s = 0;
    for (let j = 0; j < area; j++) s += data[i * area + j];
    values[i] = s / area;
  }
  return { width: c, values, perExample: 1 };
}

/** Inputs [N, C, H, W] average-pooled to at most 7 × 7 per channel (other shapes: as they are), for clustering. */
function poolInput(x: Tensor): { width: number; values: Float64Array } {
  const d = x.data as Float32Array;
  const [n, ...rest] = x.shape;
  if (rest.length !== 3) return { width: rest.reduce((a, b) => a * b, 1), values: Float64Array.from(d) };
  const [c, h, w] = rest;
  const gh = Math.min(7, h);
  const gw = Math.min(7, w);
  const width = c * gh * gw;
  const values = new Float64Array(n * width);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < w; xx++) {
          const cell = ch * gh * gw + Math.floor((y * gh) / h) * gw + Math.floor((xx * gw) / w);
          values[i * width + cell] += d[((i * c + ch) * h + y) * w + xx] / ((h / gh) * (w / gw));
        }
      }
    }
  }
  return { width, values };
}

/** The per-row values of a RowValues option. */
function resolveRows(what: string, v: RowValues, examples: number, positions: number): Float64Array {
  const rows = examples * positions;
  if (typeof v === 'function') return Float64Array.from({ length: rows }, (_, r) => v(Math.floor(r / positions), r % positions));
  if (v.length === rows) return Float64Array.from(v);
  if (v.length === examples && positions > 1) return Float64Array.from({ length: rows }, (_, r) => v[Math.floor(r / positions)]);
  throw new Error(`probe: ${v.length} ${what} for ${examples} examples${positions > 1 ? ` × ${positions} positions (give ${rows}, or a function)` : ''}`);
}

/** Control labels (Hewitt & Liang): each type gets the label of a random row, i.e. a draw from the empirical distribution. */
function controlLabels(types: Float64Array, labels: Float64Array, keep: Int32Array, seed: number): { labels: Float64Array; types: number } {
  const rand = mulberry32(mixSeed(seed, 0xc0de));
  const byType = new Map<number, number>();
  const out = new Float64Array(labels.length).fill(NaN);
  for (const r of keep) {
    let l = byType.get(types[r]);
    if (l === undefined) byType.set(types[r], (l = labels[keep[Math.floor(rand() * keep.length)]]));
    out[r] = l;
  }
  return { labels: out, types: byType.size };
}

async function probeSites(model: Model, data: Dataset, sites: readonly string[], o: Omit<ProbeOptions, 'site'>): Promise<ProbeResult[]> {
  const t0 = performance.now();
  const kind = o.kind ?? 'softmax';
  const target = o.target ?? 'class';
  const split = o.split ?? 0.25;
  const seed = o.seed ?? 0;
  if (!['softmax', 'ridge', 'mlp'].includes(kind)) throw new Error(`probe: unknown kind '${kind}' (softmax, ridge, mlp)`);
  if (target !== 'class' && target !== 'continuous') throw new Error(`probe: target must be 'class' or 'continuous', got '${String(target)}'`);
  if (target === 'continuous' && kind !== 'ridge') throw new Error(`probe: a continuous target needs kind 'ridge', not '${kind}'`);
  if (!(split > 0 && split < 1)) throw new Error(`probe: split (held-out fraction) must be in (0, 1), got ${split}`);
  if (o.pool !== undefined && o.pool !== 'mean' && o.pool !== 'flatten') throw new Error(`probe: pool must be 'mean' or 'flatten', got '${String(o.pool)}'`);
  if (data.size < 4) throw new Error(`probe: ${data.name} has ${data.size} examples; a train/held-out split needs at least 4`);
  for (const s of sites) model.site(s); // unknown names fail here, listing the nearest
  const labelsOption = o.labels ?? data.labels;
  if (labelsOption === undefined) throw new Error(`probe: give labels (${data.name} has no per-example labels)`);

  const control = o.control ?? true;
  const cap = await capture(model, data, sites, o, control && o.types === undefined, 'capture');
  const P = cap.positions;
  const labels = resolveRows('labels', labelsOption, data.size, P);
  const keepList: number[] = [];
  for (let r = 0; r < labels.length; r++) {
    const l = labels[r];
    if (Number.isNaN(l) || (target === 'class' && l < 0)) continue;
    if (!Number.isFinite(l) || (target === 'class' && !Number.isInteger(l))) throw new Error(`probe: label ${l} of row ${r} (example ${Math.floor(r / P)}) is not ${target === 'class' ? 'a class index' : 'finite'}`);
    keepList.push(r);
  }
  const keep = Int32Array.from(keepList);
  const classes = target === 'class' ? keep.reduce((m, r) => Math.max(m, labels[r] + 1), 0) : 0;
  if (target === 'class' && classes < 2) throw new Error('probe: the labels hold fewer than 2 classes');

  // Split by example, so a window's tokens stay on one side.
  const order = permutation(data.size, mixSeed(seed, 0x5e1));
  const heldOut = new Uint8Array(data.size);
  const nTest = Math.max(1, Math.round(split * data.size));
  for (let i = 0; i < nTest; i++) heldOut[order[i]] = 1;
  const trainRows = keep.filter((r) => !heldOut[Math.floor(r / P)]);
  const testRows = keep.filter((r) => heldOut[Math.floor(r / P)] === 1);
  if (trainRows.length === 0 || testRows.length === 0) throw new Error(`probe: the split left ${trainRows.length} training and ${testRows.length} held-out rows`);

  let ctl: { labels: Float64Array; types: number } | undefined;
  if (control) {
    const types = o.types !== undefined ? resolveRows('types', o.types, data.size, P) : defaultTypes(cap, data.size, o.clusters, seed);
    ctl = controlLabels(types, labels, keep, seed);
  }
  let random: Captured | undefined;
  if (o.randomBaseline ?? true) {
    const copy = await randomizedCopy(model, parameterLayers(model).map((l) => l.name), mixSeed(seed, 0xbad));
    try {
      random = await capture(copy, data, sites, o, false, 'random network');
    } finally {
      await copy.dispose();
    }
  }

  const fit = (x: Float32Array, d: number, y: Float64Array) => fitOn(kind, target, x, d, y, trainRows, testRows, classes, o);
  const results: ProbeResult[] = [];
  for (let i = 0; i < sites.length; i++) {
    const site = sites[i];
    const d = cap.widths[i];
    const main = await fit(cap.features[i], d, labels);
    const ctlScore = ctl ? await fit(cap.features[i], d, ctl.labels) : undefined;
    const rnd = random ? await fit(random.features[i], d, labels) : undefined;
    const majority = majorityScore(labels, trainRows, testRows, target);
    const metric = target === 'class' ? 'accuracy' : 'r2';
    const selectivity = ctlScore ? main.test - ctlScore.test : null;
    const checks: Check[] = [
      { name: 'held-out vs majority', value: main.test - majority, passed: main.test > majority, detail: `held-out ${metric} ${main.test.toFixed(4)} vs ${majority.toFixed(4)} for always predicting the training rows' ${target === 'class' ? 'majority class' : 'mean'}` },
    ];
    if (ctlScore && selectivity !== null) checks.push({ name: 'selectivity', value: selectivity, passed: selectivity > 0, detail: `held-out ${metric} ${main.test.toFixed(4)} − control task ${ctlScore.test.toFixed(4)} (${ctl!.types} types with random fixed labels, Hewitt & Liang 2019)` });
    if (rnd) checks.push({ name: 'beats random network', value: main.test - rnd.test, passed: main.test > rnd.test, detail: `held-out ${metric} ${main.test.toFixed(4)} vs ${rnd.test.toFixed(4)} at the same site of the re-initialised network` });
    results.push({
      method: 'probe', taxonomy: TAXONOMY, site, kind, metric, features: d, rows: { train: trainRows.length, test: testRows.length }, classes,
      train: main.train, test: main.test, majority,
      control: ctlScore ? { train: ctlScore.train, test: ctlScore.test, types: ctl!.types } : null,
      selectivity,
      randomNetwork: rnd ? { train: rnd.train, test: rnd.test } : null,
      ...(main.model.weights ? { weights: main.model.weights, bias: main.model.bias } : {}),
      checks,
      params: { kind, target, split, seed, epochs: o.epochs, lr: o.lr, l2: o.l2, hidden: o.hidden, batchSize: o.batchSize, pool: o.pool ?? 'mean', positions: P },
      ms: performance.now() - t0,
    });
  }
  return results;
}

/** Input tokens per row, or k-means clusters of the pooled inputs per example. */
function defaultTypes(cap: Captured, examples: number, clusters: number | undefined, seed: number): Float64Array {
  if (cap.tokens) return Float64Array.from(cap.tokens);
  const k = clusters ?? Math.ceil(examples / 5);
  if (!(Number.isInteger(k) && k >= 1 && k <= examples)) throw new Error(`probe: clusters must be an integer in [1, ${examples}], got ${k}`);
  const { assignments } = kmeans(cap.pooled!, examples, cap.pooledWidth, k, { seed, restarts: 1, maxIterations: 20 });
  return Float64Array.from({ length: examples * cap.positions }, (_, r) => assignments[Math.floor(r / cap.positions)]);
}

function rowsOfIndex(x: Float32Array, d: number, rows: Int32Array): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => out.set(x.subarray(r * d, r * d + d), i * d));
  return out;
}

async function fitOn(kind: ProbeKind, target: 'class' | 'continuous', x: Float32Array, d: number, y: Float64Array, trainRows: Int32Array, testRows: Int32Array, classes: number, o: TrainOptions): Promise<{ train: number; test: number; model: FittedProbe }> {
  const xTrain = rowsOfIndex(x, d, trainRows);
  const xTest = rowsOfIndex(x, d, testRows);
  const yTrain = Float64Array.from(trainRows, (r) => y[r]);
  const yTest = Float64Array.from(testRows, (r) => y[r]);
  const n = trainRows.length;
  if (target === 'continuous') {
    const model = fitRidge(xTrain, yTrain, { rows: n, features: d, classes: 1 }, o);
    const mean = [yTrain.reduce((a, b) => a + b, 0) / n];
    return { model, train: rSquared(model.scores(xTrain, n), yTrain, mean), test: rSquared(model.scores(xTest, testRows.length), yTest, mean) };
  }
  const shape = { rows: n, features: d, classes };
  let model: FittedProbe;
  if (kind === 'ridge') {
    const onehot = new Float64Array(n * classes);
    yTrain.forEach((c, i) => (onehot[i * classes + c] = 1));
    model = fitRidge(xTrain, onehot, shape, o);
  } else model = await (kind === 'mlp' ? fitMlp : fitSoftmax)(xTrain, yTrain, shape, o);
  return { model, train: accuracy(model.predict(xTrain, n), yTrain), test: accuracy(model.predict(xTest, testRows.length), yTest) };
}

function majorityScore(y: Float64Array, trainRows: Int32Array, testRows: Int32Array, target: 'class' | 'continuous'): number {
  if (target === 'continuous') {
    const mean = trainRows.reduce((a, r) => a + y[r], 0) / trainRows.length;
    return rSquared(Float64Array.from(testRows, () => mean), Float64Array.from(testRows, (r) => y[r]), [mean]);
  }
  const counts = new Map<number, number>();
  for (const r of trainRows) counts.set(y[r], (counts.get(y[r]) ?? 0) + 1);
  const top = [...counts].reduce((a, b) => (b[1] > a[1] || (b[1] === a[1] && b[0] < a[0]) ? b : a))[0];
  return testRows.reduce((a, r) => a + (y[r] === top ? 1 : 0), 0) / testRows.length;
}

export const PROBING_METHODS = {
  probe: {
    info: { title: 'Probing classifier with control task and random-network baseline', reference: 'Hewitt & Liang 2019, Designing and Interpreting Probes with Control Tasks; Belinkov 2022, Probing Classifiers', taxonomy: TAXONOMY, stochastic: true },
    run: probe,
  },
  'probe-layers': {
    info: { title: 'Probe sweep over layers', reference: 'Alain & Bengio 2016, Understanding intermediate layers using linear classifier probes', taxonomy: TAXONOMY, stochastic: true },
    run: probeLayers,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
