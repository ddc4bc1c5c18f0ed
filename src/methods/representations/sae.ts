/**
 * Sparse autoencoders on a site's activations (Bricken et al. 2023, "Towards Monosemanticity"; Cunningham et al.
 * 2023, "Sparse Autoencoders Find Highly Interpretable Features"; Gao et al. 2024, "Scaling and Evaluating Sparse
 * Autoencoders"): an overcomplete dictionary whose sparse latents reconstruct the activations. ReLU latents with an
 * L1 penalty, or TopK latents (exactly the k largest pre-activations kept, ReLU'd). The step graph (sae-graph.ts) is
 * an ONNX graph differentiated by the project's autodiff; Adam runs on the host; after every step the decoder rows
 * (dictionary directions) are renormalised to unit norm, so the L1 penalty cannot be dodged by shrinking latents.
 * Not done: dead-latent resampling and Gao et al.'s AuxK loss (dead features are reported instead).
 *
 * @example
 * const source = siteSource(model, (await loadMnist('train')).slice(0, 5000), 'relu1.relu', { batchSize: 256 });
 * const sae = await trainSae(source, { features: 256, sparsity: { kind: 'topk', k: 16 }, steps: 2000, seed: 1 });
 * const m = await evaluateSae(sae, siteSource(model, test, 'relu1.relu'));
 * m.fve; m.l0; m.dead;
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import { Graph } from '../../onnx/graph.js';
import { decodeModel, encodeModel } from '../../onnx/proto.js';
import { tensorFromProto } from '../../onnx/tensor-proto.js';
import { Optimizer } from '../../model/train/optim.js';
import { defaultRuntime } from '../../runtime/default.js';
import type { Runtime, RuntimeSession, SessionOptions } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Intervention } from '../../model/interventions.js';
import { RAUKER_V, passive, type MethodInfo } from '../taxonomy.js';
import type { Check } from '../attribution/explanation.js';
import { buildSaeStep, forwardModel, SAE_IO, SAE_WEIGHTS, weightShapes, type SaeWeight, type Sparsity } from './sae-graph.js';
import { mig, dci } from './disentanglement.js';

export type { Sparsity } from './sae-graph.js';

/** Rows of activations, and the dataset example each row came from. */
export interface ActivationChunk {
  readonly rows: Float32Array;
  readonly examples: Int32Array;
}

/** A stream of activation rows of `dim` values, read again for every epoch (bounded memory: one chunk at a time). */
export interface ActivationSource {
  readonly name: string;
  readonly dim: number;
  chunks(epoch: number): AsyncIterable<ActivationChunk>;
}

/** Rows held in memory (synthetic data, benchmarks), in chunks, shuffled per epoch when `seed` is given. */
export function matrixSource(rows: Float32Array, dim: number, options: { chunk?: number; seed?: number } = {}): ActivationSource {
  if (!Number.isInteger(dim) || dim <= 0 || rows.length % dim !== 0) throw new Error(`matrixSource: ${rows.length} values are not rows of dim ${dim}`);
  const n = rows.length / dim;
  const chunk = options.chunk ?? 1024;
  return {
    name: `matrix ${n}×${dim}`,
    dim,
    async *chunks(epoch) {
      const order = Int32Array.from({ length: n }, (_, i) => i);
      if (options.seed !== undefined) {
        const rand = mulberry32(options.seed * 7919 + epoch);
        for (let i = n - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1));
          [order[i], order[j]] = [order[j], order[i]];
        }
      }
      for (let a = 0; a < n; a += chunk) {
        const ix = order.subarray(a, Math.min(n, a + chunk));
        const out = new Float32Array(ix.length * dim);
        ix.forEach((r, k) => out.set(rows.subarray(r * dim, (r + 1) * dim), k * dim));
        yield { rows: out, examples: Int32Array.from(ix) };
      }
    },
  };
}

export interface SiteSourceOptions {
  /** Conv sites [B, C, H, W]: every spatial position a row of C ('positions', default), or the spatial mean ('mean'). */
  readonly spatial?: 'positions' | 'mean';
  /** Examples per model run (default 128). */
  readonly batchSize?: number;
  readonly shuffle?: boolean;
  readonly seed?: number;
}

/** The units of a site's rows: rank 2 [B, D] → D; rank 3 [B, T, D] (tokens) → D; rank 4 [B, C, H, W] → C. */
export function siteDim(model: Model, site: string): number {
  const shape = model.site(site).shape;
  const d = shape && (shape.length === 4 ? shape[1] : shape[shape.length - 1]);
  if (!shape || shape.length < 2 || shape.length > 4 || typeof d !== 'number') throw new Error(`sparse autoencoder: site '${site}' has shape [${shape?.join(', ') ?? '?'}]; expected [B, D], [B, T, D] or [B, C, H, W] with a known unit axis`);
  return d;
}

/** A site's value [B, …] as rows [n, D]; `per` rows per example. */
export function siteRows(t: Tensor, spatial: 'positions' | 'mean'): { rows: Float32Array; per: number } {
  const x = t.data as Float32Array;
  if (t.rank !== 4) return { rows: x, per: t.rank === 3 ? t.shape[1] : 1 };
  const [B, C, H, W] = t.shape;
  const hw = H * W;
  if (spatial === 'mean') {
    const rows = new Float32Array(B * C);
    for (let bc = 0; bc < B * C; bc++) {
      let s = 0;
      for (let p = 0; p < hw; p++) s += x[bc * hw + p];
      rows[bc] = s / hw;
    }
    return { rows, per: 1 };
  }
  const rows = new Float32Array(B * C * hw); // [B, H, W, C]
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let p = 0; p < hw; p++) rows[(b * hw + p) * C + c] = x[(b * C + c) * hw + p];
  return { rows, per: hw };
}

/** Reconstructed rows back in the site's layout; for 'mean' rows, the site with its spatial mean replaced. */
export function rowsToSite(recon: Float32Array, like: Tensor, spatial: 'positions' | 'mean'): Tensor<'float32'> {
  if (like.rank !== 4) return Tensor.float32(recon, like.shape);
  const [B, C, H, W] = like.shape;
  const hw = H * W;
  const x = like.data as Float32Array;
  const out = new Float32Array(x.length);
  if (spatial === 'mean') {
    const { rows: means } = siteRows(like, 'mean');
    for (let bc = 0; bc < B * C; bc++) for (let p = 0; p < hw; p++) out[bc * hw + p] = x[bc * hw + p] - means[bc] + recon[bc];
  } else {
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let p = 0; p < hw; p++) out[(b * C + c) * hw + p] = recon[(b * hw + p) * C + c];
  }
  return Tensor.float32(out, like.shape);
}

/** Activations of `site` over `data`, captured one model batch at a time. */
export function siteSource(model: Model, data: Dataset, site: string, options: SiteSourceOptions = {}): ActivationSource {
  const dim = siteDim(model, site);
  const input = model.inputs[0]?.name;
  if (!input) throw new Error('siteSource: the model has no input');
  const spatial = options.spatial ?? 'positions';
  if (spatial !== 'positions' && spatial !== 'mean') throw new Error(`siteSource: spatial must be 'positions' or 'mean', got '${String(spatial)}'`);
  return {
    name: `${site} over ${data.name}`,
    dim,
    async *chunks(epoch) {
      for (const b of data.batches(options.batchSize ?? 128, { shuffle: options.shuffle ?? false, seed: options.seed ?? 0, epoch })) {
        const t = (await model.run({ [input]: b.x }, { capture: [site] })).captures[site];
        const { rows, per } = siteRows(t, spatial);
        const examples = new Int32Array(rows.length / dim);
        for (let r = 0; r < examples.length; r++) examples[r] = b.indices[Math.floor(r / per)];
        yield { rows, examples };
      }
    },
  };
}

export interface FeatureExamples {
  readonly feature: number;
  /** Dataset indices, most activating first (an example counts once, at its largest activation). */
  readonly examples: number[];
  readonly values: number[];
}

export interface SaeMetrics {
  readonly rows: number;
  /** Mean squared error per value. */
  readonly mse: number;
  /** Fraction of variance explained: 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖². */
  readonly fve: number;
  /** Mean number of active (> 0) latents per row. */
  readonly l0: number;
  /** Latents never active over the rows. */
  readonly dead: number[];
  /** How often each latent is active (fraction of rows). */
  readonly frequency: Float64Array;
  /** Per latent, its top examples (with `top` > 0). */
  readonly top?: FeatureExamples[];
  readonly checks: Check[];
}

/** Reconstruction and sparsity over every row of `source` (epoch 0), and optionally each latent's top examples. */
export async function evaluateSae(sae: SparseAutoencoder, source: ActivationSource, options: { top?: number; signal?: AbortSignal } = {}): Promise<SaeMetrics> {
  const { dim: d, features: f } = sae;
  if (source.dim !== d) throw new Error(`evaluateSae: the source has rows of ${source.dim}, the autoencoder reads ${d}`);
  const k = options.top ?? 0;
  const sum = new Float64Array(d);
  const sumSq = new Float64Array(d);
  const active = new Float64Array(f);
  const top = Array.from({ length: k > 0 ? f : 0 }, () => ({ ex: [] as number[], v: [] as number[] }));
  let sse = 0;
  let n = 0;
  let l0 = 0;
  for await (const chunk of source.chunks(0)) {
    options.signal?.throwIfAborted();
    const { latents, reconstruction } = await sae.encode(chunk.rows);
    const m = chunk.rows.length / d;
    for (let i = 0; i < chunk.rows.length; i++) {
      const x = chunk.rows[i];
      sse += (x - reconstruction[i]) ** 2;
      sum[i % d] += x;
      sumSq[i % d] += x * x;
    }
    for (let r = 0; r < m; r++) {
      for (let j = 0; j < f; j++) {
        const v = latents[r * f + j];
        if (v <= 0) continue;
        active[j]++;
        l0++;
        if (k > 0) insertTop(top[j], chunk.examples[r], v, k);
      }
    }
    n += m;
  }
  if (n === 0) throw new Error(`evaluateSae: the source ${source.name} gave no rows`);
  let sst = 0;
  for (let j = 0; j < d; j++) sst += sumSq[j] - (sum[j] * sum[j]) / n;
  const fve = 1 - sse / Math.max(sst, 1e-30);
  const dead = [...active.keys()].filter((j) => active[j] === 0);
  const checks: Check[] = [
    { name: 'fraction of variance explained', value: fve, detail: `1 − SSE/SST over ${n} rows (SST about the rows' mean)` },
    { name: 'L0', value: l0 / n, ...(sae.sparsity.kind === 'topk' ? { passed: l0 / n <= sae.sparsity.k + 1e-9 } : {}), detail: sae.sparsity.kind === 'topk' ? `mean active latents; TopK allows at most k = ${sae.sparsity.k}` : 'mean active latents per row' },
    { name: 'dead features', value: dead.length / f, detail: `${dead.length} of ${f} latents never active over ${n} rows` },
  ];
  return {
    rows: n, mse: sse / (n * d), fve, l0: l0 / n, dead, frequency: active.map((a) => a / n), checks,
    ...(k > 0 ? { top: top.map((t, feature) => ({ feature, examples: t.ex, values: t.v })) } : {}),
  };
}

function insertTop(t: { ex: number[]; v: number[] }, example: number, v: number, k: number): void {
  const at = t.ex.indexOf(example);
  if (at >= 0) {
    if (t.v[at] >= v) return;
    t.ex.splice(at, 1);
    t.v.splice(at, 1);
  } else if (t.v.length === k && t.v[k - 1] >= v) {
    return;
  }
  let i = t.v.length;
  while (i > 0 && t.v[i - 1] < v) i--;
  t.ex.splice(i, 0, example);
  t.v.splice(i, 0, v);
  if (t.v.length > k) {
    t.ex.pop();
    t.v.pop();
  }
}

export interface SplicedLoss {
  /** Mean cross-entropy of the model, clean, with the site zeroed, and with the SAE's reconstruction spliced in. */
  readonly clean: number;
  readonly zeroAblated: number;
  readonly spliced: number;
  /** (zero − spliced) / (zero − clean): 1 when the reconstruction loses nothing, 0 when it is as bad as zeros. */
  readonly recovered: number;
  readonly checks: Check[];
}

/** Mean cross-entropy of logits [.., V] against labels (host log-softmax). */
function crossEntropy(logits: Tensor, labels: Tensor): number {
  const v = logits.shape[logits.rank - 1];
  const x = logits.data as Float32Array;
  const y = labels.data as BigInt64Array;
  if (x.length / v !== y.length) throw new Error(`splicedLoss: ${x.length / v} predictions but ${y.length} labels`);
  let total = 0;
  for (let r = 0; r < y.length; r++) {
    let max = -Infinity;
    for (let c = 0; c < v; c++) max = Math.max(max, x[r * v + c]);
    let s = 0;
    for (let c = 0; c < v; c++) s += Math.exp(x[r * v + c] - max);
    total += max + Math.log(s) - x[r * v + Number(y[r])];
  }
  return total;
}

/**
 * The model's loss with the site replaced by the SAE reconstruction (a `set` intervention with a per-batch tensor),
 * against the clean loss and zero-ablation (Bricken et al. 2023; the "loss recovered" of Gao et al. 2024).
 */
export async function splicedLoss(model: Model, data: Dataset, site: string, sae: SparseAutoencoder, options: { spatial?: 'positions' | 'mean'; batchSize?: number; signal?: AbortSignal } = {}): Promise<SplicedLoss> {
  const dim = siteDim(model, site);
  if (dim !== sae.dim) throw new Error(`splicedLoss: site '${site}' has ${dim} units, the autoencoder reads ${sae.dim}`);
  const input = model.inputs[0].name;
  const output = model.outputs[0].name;
  const spatial = options.spatial ?? 'positions';
  let [clean, zero, spliced, labels] = [0, 0, 0, 0];
  for (const b of data.batches(options.batchSize ?? 128)) {
    options.signal?.throwIfAborted();
    const feeds = { [input]: b.x };
    const run = await model.run(feeds, { capture: [site] });
    const t = run.captures[site];
    const { reconstruction } = await sae.encode(siteRows(t, spatial).rows);
    const set: Intervention = { kind: 'set', site, value: rowsToSite(reconstruction, t, spatial) };
    clean += crossEntropy(run.outputs[output], b.y);
    zero += crossEntropy((await model.run(feeds, { interventions: [{ kind: 'zero', site }] })).outputs[output], b.y);
    spliced += crossEntropy((await model.run(feeds, { interventions: [set] })).outputs[output], b.y);
    labels += b.y.size;
  }
  if (labels === 0) throw new Error(`splicedLoss: the dataset ${data.name} is empty`);
  [clean, zero, spliced] = [clean / labels, zero / labels, spliced / labels];
  const recovered = (zero - spliced) / (zero - clean);
  return {
    clean, zeroAblated: zero, spliced, recovered,
    checks: [
      { name: 'loss recovered', value: recovered, passed: spliced <= zero, detail: `(zero ${zero.toFixed(4)} − spliced ${spliced.toFixed(4)}) / (zero − clean ${clean.toFixed(4)}); passes when the reconstruction beats zero-ablation` },
    ],
  };
}

export interface SaeProgress {
  readonly step: number;
  readonly steps: number;
  readonly loss: number;
  readonly mse: number;
  readonly l1: number;
  readonly samplesPerSecond: number;
}

export interface TrainSaeOptions {
  /** Latents (dictionary size). */
  readonly features: number;
  readonly sparsity: Sparsity;
  /** Optimiser steps (each on `batchSize` rows; the source is cycled through epochs as needed). */
  readonly steps: number;
  readonly batchSize?: number;
  /** Adam's learning rate (default 1e-3). */
  readonly lr?: number;
  readonly seed: number;
  readonly runtime?: Runtime;
  /** Options of the step session (threads…). */
  readonly session?: SessionOptions;
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: SaeProgress) => void;
}

export interface SaeTraining {
  readonly steps: number;
  readonly stopped: boolean;
  /** Loss per step. */
  readonly loss: readonly number[];
  readonly samplesPerSecond: number;
}

/** A trained dictionary: weights, how it is sparse, and the sessions that encode with it. */
export class SparseAutoencoder {
  private session?: Promise<RuntimeSession>;
  readonly checks: Check[] = [];

  constructor(
    readonly dim: number,
    readonly features: number,
    readonly sparsity: Sparsity,
    readonly weights: Readonly<Record<SaeWeight, Tensor<'float32'>>>,
    readonly training?: SaeTraining,
    private readonly runtime?: Runtime,
  ) {
    const shapes = weightShapes(dim, features);
    for (const w of SAE_WEIGHTS) {
      const t = weights[w];
      if (t.shape.join() !== shapes[w].join()) throw new Error(`SparseAutoencoder: weight ${w} has shape [${t.shape.join(', ')}], expected [${shapes[w].join(', ')}]`);
    }
    if (training) {
      const n = training.loss.length;
      const head = mean(training.loss.slice(0, Math.max(1, Math.ceil(n / 10))));
      const tail = mean(training.loss.slice(Math.floor((n * 9) / 10)));
      this.checks.push({ name: 'loss decreased', value: tail / head, passed: tail < head, detail: `mean loss over the last tenth of steps ${tail.toPrecision(4)} vs first tenth ${head.toPrecision(4)}` });
    }
    const err = maxNormError(weights.W_dec.data, features, dim);
    this.checks.push({ name: 'unit decoder norms', value: err, passed: err < 1e-4, detail: 'max |‖W_dec[i]‖ − 1| over dictionary directions' });
  }

  /** Dictionary direction i (row i of W_dec). */
  direction(i: number): Float32Array {
    return this.weights.W_dec.data.slice(i * this.dim, (i + 1) * this.dim);
  }

  /** Latents [n, features] and reconstruction [n, dim] of rows [n, dim]. */
  async encode(rows: Float32Array): Promise<{ latents: Float32Array; reconstruction: Float32Array }> {
    if (rows.length % this.dim !== 0) throw new Error(`SparseAutoencoder.encode: ${rows.length} values are not rows of ${this.dim}`);
    const session = await (this.session ??= (async () => (this.runtime ?? (await defaultRuntime())).createSession(encodeModel(forwardModel(this.dim, this.features, this.sparsity))))());
    const x = Tensor.float32(rows, [rows.length / this.dim, this.dim]);
    const out = await session.run({ [SAE_IO.x]: x, ...this.weights }, [SAE_IO.latents, SAE_IO.recon]);
    return { latents: out[SAE_IO.latents].data as Float32Array, reconstruction: out[SAE_IO.recon].data as Float32Array };
  }

  /** The ONNX model: x [N, dim] → latents [N, features], reconstruction [N, dim]; the sparsity is in its doc string. */
  toBytes(): Uint8Array {
    const doc = JSON.stringify({ glassbox: 'sparse-autoencoder', sparsity: this.sparsity });
    return encodeModel(forwardModel(this.dim, this.features, this.sparsity, this.weights, doc));
  }

  async save(path: string): Promise<void> {
    await writeFile(path, this.toBytes());
  }

  static async load(source: string | Uint8Array, runtime?: Runtime): Promise<SparseAutoencoder> {
    const name = typeof source === 'string' ? source : 'bytes';
    const g = new Graph(decodeModel(typeof source === 'string' ? await readFile(source) : source, name));
    let meta: { glassbox?: string; sparsity?: Sparsity };
    try {
      meta = JSON.parse(g.model.docString) as typeof meta;
    } catch {
      meta = {};
    }
    if (meta.glassbox !== 'sparse-autoencoder' || !meta.sparsity) throw new Error(`SparseAutoencoder.load: ${name} is not a sparse autoencoder saved by glassbox (no metadata in its doc string)`);
    const weights = {} as Record<SaeWeight, Tensor<'float32'>>;
    for (const w of SAE_WEIGHTS) {
      const p = g.initializers.get(w);
      if (!p) throw new Error(`SparseAutoencoder.load: ${name} has no weight '${w}'`);
      weights[w] = tensorFromProto(p) as Tensor<'float32'>;
    }
    const [d, f] = weights.W_enc.shape;
    return new SparseAutoencoder(d, f, meta.sparsity, weights, undefined, runtime);
  }

  async dispose(): Promise<void> {
    if (this.session) await (await this.session).release();
    this.session = undefined;
  }
}

function mean(v: readonly number[]): number {
  return v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
}

function maxNormError(w: Float32Array, rows: number, cols: number): number {
  let worst = 0;
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += w[i * cols + j] ** 2;
    worst = Math.max(worst, Math.abs(Math.sqrt(s) - 1));
  }
  return worst;
}

function normaliseRows(w: Float32Array, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += w[i * cols + j] ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < cols; j++) w[i * cols + j] *= inv;
  }
}

export function checkSparsity(s: Sparsity, features: number): void {
  if (s.kind === 'topk') {
    if (!Number.isInteger(s.k) || s.k <= 0 || s.k > features) throw new Error(`sparse autoencoder: k must be an integer in 1..${features} (the features), got ${s.k}`);
  } else if (s.kind === 'relu') {
    if (!(s.l1 >= 0) || !Number.isFinite(s.l1)) throw new Error(`sparse autoencoder: l1 must be a finite number ≥ 0, got ${s.l1}`);
  } else {
    throw new Error(`sparse autoencoder: unknown sparsity kind '${(s as { kind: string }).kind}' (known: relu, topk)`);
  }
}

/** Initial weights (Gao et al.): random unit decoder rows, encoder = decoderᵀ, b_enc = 0, b_dec = the rows' mean. */
function initialWeights(d: number, f: number, seed: number, first: Float32Array): Record<SaeWeight, Tensor<'float32'>> {
  const rand = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const dec = Float32Array.from({ length: f * d }, gauss);
  normaliseRows(dec, f, d);
  const enc = new Float32Array(d * f);
  for (let i = 0; i < f; i++) for (let j = 0; j < d; j++) enc[j * f + i] = dec[i * d + j];
  const n = first.length / d;
  const bDec = new Float32Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) bDec[j] += first[r * d + j] / n;
  return { W_enc: Tensor.float32(enc, [d, f]), b_enc: Tensor.float32(new Float32Array(f), [f]), W_dec: Tensor.float32(dec, [f, d]), b_dec: Tensor.float32(bDec, [d]) };
}

/** Batches of exactly `batch` rows drawn from the source, epoch after epoch. */
async function* fixedBatches(source: ActivationSource, batch: number): AsyncGenerator<Float32Array> {
  const d = source.dim;
  const buf = new Float32Array(batch * d);
  let fill = 0; // carried across epochs, so a source smaller than a batch still fills one
  for (let epoch = 0; ; epoch++) {
    let any = false;
    for await (const chunk of source.chunks(epoch)) {
      any ||= chunk.rows.length > 0;
      for (let r = 0; r < chunk.rows.length / d; r++) {
        buf.set(chunk.rows.subarray(r * d, (r + 1) * d), fill * d);
        if (++fill === batch) {
          yield buf.slice();
          fill = 0;
        }
      }
    }
    if (!any) throw new Error(`trainSae: the activation source ${source.name} gave no rows`);
  }
}

/** Trains a sparse autoencoder on the rows of `source`; seeded and reproducible. */
export async function trainSae(source: ActivationSource, options: TrainSaeOptions): Promise<SparseAutoencoder> {
  const { features, sparsity, steps, seed } = options;
  const batch = options.batchSize ?? 256;
  const d = source.dim;
  if (!Number.isInteger(features) || features <= 0) throw new Error(`trainSae: features must be a positive integer, got ${features}`);
  if (!Number.isInteger(steps) || steps <= 0) throw new Error(`trainSae: steps must be a positive integer, got ${steps}`);
  if (!Number.isInteger(batch) || batch <= 0) throw new Error(`trainSae: batchSize must be a positive integer, got ${batch}`);
  checkSparsity(sparsity, features);
  const runtime = options.runtime ?? (await defaultRuntime());
  const graph = await buildSaeStep(runtime, d, features, batch, sparsity);
  const session = await runtime.createSession(graph.bytes, options.session);
  const batches = fixedBatches(source, batch);
  const losses: number[] = [];
  let weights: Record<SaeWeight, Tensor<'float32'>> | undefined;
  let stopped = false;
  const started = performance.now();
  try {
    const shapes = weightShapes(d, features);
    const sizes = new Map(SAE_WEIGHTS.map((w) => [w, shapes[w].reduce((a, b) => a * b, 1)]));
    const optimizer = new Optimizer({ kind: 'adam', lr: options.lr ?? 1e-3 }, sizes);
    const one = Tensor.float32([1], []);
    for (let step = 0; step < steps; step++) {
      if (options.signal?.aborted) {
        stopped = true;
        break;
      }
      const next = await batches.next();
      const rows = next.value as Float32Array;
      for (let i = 0; i < rows.length; i++) if (!Number.isFinite(rows[i])) throw new Error(`trainSae: activation row ${Math.floor(i / d)} of step ${step} holds ${rows[i]}`);
      weights ??= initialWeights(d, features, seed, rows);
      const out = await session.run({ [SAE_IO.x]: Tensor.float32(rows, [batch, d]), [graph.seed]: one, ...weights }, graph.fetches);
      const loss = out[SAE_IO.loss].at(0);
      if (!Number.isFinite(loss)) throw new Error(`trainSae: the loss is ${loss} at step ${step}; lower the learning rate`);
      losses.push(loss);
      const grads = new Map(SAE_WEIGHTS.map((w, i) => [w, out[graph.fetches[3 + i]].data as Float32Array]));
      optimizer.step(new Map(SAE_WEIGHTS.map((w) => [w, weights![w].data])), grads);
      normaliseRows(weights.W_dec.data, features, d);
      const seconds = (performance.now() - started) / 1000;
      options.onProgress?.({ step: step + 1, steps, loss, mse: out[SAE_IO.mse].at(0), l1: out[SAE_IO.l1].at(0), samplesPerSecond: ((step + 1) * batch) / seconds });
    }
  } finally {
    await batches.return(undefined);
    await session.release();
  }
  if (!weights) throw new Error('trainSae: stopped before the first step');
  const seconds = (performance.now() - started) / 1000;
  return new SparseAutoencoder(d, features, sparsity, weights, { steps: losses.length, stopped, loss: losses, samplesPerSecond: (losses.length * batch) / seconds }, runtime);
}

/** Train on a model's site over a dataset (the registry's entry point). */
async function runSae(model: Model, data: Dataset, site: string, options: TrainSaeOptions & { spatial?: 'positions' | 'mean' }): Promise<SparseAutoencoder> {
  return trainSae(siteSource(model, data, site, { spatial: options.spatial, shuffle: true, seed: options.seed }), options);
}

export const DICTIONARY_METHODS = {
  'sparse-autoencoder': {
    info: {
      title: 'Sparse autoencoder (ReLU + L1, or TopK)',
      reference: 'Bricken et al. 2023, Towards Monosemanticity; Gao et al. 2024, Scaling and Evaluating Sparse Autoencoders',
      taxonomy: passive('hidden semantics', 'global', RAUKER_V.dictionaries),
      stochastic: true,
    },
    run: runSae,
  },
  mig: {
    info: { title: 'Mutual information gap', reference: 'Chen et al. 2018, Isolating Sources of Disentanglement in VAEs', taxonomy: passive('hidden semantics', 'global', RAUKER_V.dictionaries) },
    run: mig,
  },
  dci: {
    info: { title: 'DCI disentanglement, completeness, informativeness', reference: 'Eastwood & Williams 2018, A Framework for the Quantitative Evaluation of Disentangled Representations', taxonomy: passive('hidden semantics', 'global', RAUKER_V.dictionaries) },
    run: dci,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
