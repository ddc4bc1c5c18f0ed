/**
 * Model stitching (Lenc & Vedaldi 2015; Bansal et al. 2021): feed model A's activation at siteA, through a trained
 * linear map, into model B at siteB (B's own value replaced by a `set` intervention) and measure B's accuracy. A
 * dense layer for [N, p] sites, a 1×1 convolution for [N, C, H, W] sites (same H × W). The stitch is first fitted by
 * ridge least squares from A's activations to B's, then fine-tuned on B's classification loss as Bansal et al. train
 * it: a Trainer updates only the stitch's W and b in the graph A's activation → stitch → B's layers after siteB →
 * logits, both models frozen. Also here: streaming capture of activations at several sites, shared with the layer ×
 * layer similarity matrix.
 */
import { dataset, type Dataset } from '../../data/datasets/dataset.js';
import { permutation } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import { Trainer } from '../../model/train/trainer.js';
import { cutEdge, freshName } from '../../onnx/rewrite.js';
import { attr, encodeModel, makeGraph, makeModel, makeNode, makeValueInfo, type ModelProto } from '../../onnx/proto.js';
import { ONNX_DTYPE, tensorToProto } from '../../onnx/tensor-proto.js';
import { defaultRuntime } from '../../runtime/default.js';
import type { Runtime, RuntimeSession } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { crossProduct } from './cca.js';

export interface ActivationOptions {
  /** Examples used (default 1000; the first ones of the dataset). */
  readonly limit?: number;
  readonly batchSize?: number;
  /** Sites of rank > 2: 'mean' averages over positions (H, W for [N,C,H,W]; tokens for [N,T,D]), 'flatten' keeps all. */
  readonly pooling?: 'mean' | 'flatten';
  /** Called after every batch (and by layerSimilarity after every pair of layers). */
  readonly onProgress?: (p: { readonly stage: string; readonly done: number; readonly total: number }) => void;
}

/** A site's activation over `data` as a matrix [n, p] per site, captured batch by batch. */
export async function activations(model: Model, data: Dataset, sites: readonly string[], options: ActivationOptions = {}, stage = 'activations'): Promise<Record<string, Tensor<'float32'>>> {
  const n = Math.min(options.limit ?? 1000, data.size);
  const batchSize = options.batchSize ?? 100;
  if (!(n >= 1) || !(batchSize >= 1)) throw new Error(`activations: need limit ≥ 1 and batchSize ≥ 1 (got ${options.limit}, ${options.batchSize})`);
  for (const s of sites) model.site(s);
  const input = model.inputs[0].name;
  const out: Record<string, Float32Array> = {};
  const width: Record<string, number> = {};
  for (let start = 0; start < n; start += batchSize) {
    const b = data.slice(start, Math.min(n, start + batchSize)).gather(Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => i));
    const { captures } = await model.run({ [input]: b.x }, { capture: sites });
    for (const s of sites) {
      const m = pool(captures[s], options.pooling ?? 'mean', s);
      const p = m.shape[1];
      if (!out[s]) [out[s], width[s]] = [new Float32Array(n * p), p];
      out[s].set(m.data as Float32Array, start * p);
    }
    options.onProgress?.({ stage, done: Math.min(n, start + batchSize), total: n });
  }
  return Object.fromEntries(sites.map((s) => [s, Tensor.float32(out[s], [n, width[s]])]));
}

/** [N, ...] → [N, p]: flattened, or averaged over positions ([N,C,H,W] over H, W; [N,T,D] over T). */
export function pool(t: Tensor, pooling: 'mean' | 'flatten', site: string): Tensor<'float32'> {
  if (t.dtype !== 'float32') throw new Error(`site '${site}' is ${t.dtype}; similarity needs float32 activations`);
  const [n, ...rest] = t.shape;
  const d = t.data as Float32Array;
  if (t.shape.length <= 2 || pooling === 'flatten') return Tensor.float32(d, [n, rest.reduce((a, b) => a * b, 1)]);
  const [units, reps, stride, step] = t.shape.length === 4 ? [rest[0], rest[1] * rest[2], 1, rest[1] * rest[2]] : [rest[rest.length - 1], rest.slice(0, -1).reduce((a, b) => a * b, 1), rest[rest.length - 1], 1];
  const per = units * reps;
  const out = new Float32Array(n * units);
  for (let i = 0; i < n; i++) {
    for (let u = 0; u < units; u++) {
      let s = 0;
      for (let r = 0; r < reps; r++) s += d[i * per + u * step + r * stride];
      out[i * units + u] = s / reps;
    }
  }
  return Tensor.float32(out, [n, units]);
}

export interface StitchOptions {
  /** Training examples for the least-squares fit (default 1000, the first of `data`). */
  readonly limit?: number;
  /** Held-out data for the accuracies (default: the next `limit` examples of `data`). */
  readonly test?: Dataset;
  readonly testLimit?: number;
  /** Ridge strength relative to the mean variance of A's features (default 1e-4). */
  readonly ridge?: number;
  /** The largest accuracy drop that passes (default 0.02). */
  readonly tolerance?: number;
  readonly batchSize?: number;
  readonly seed?: number;
  readonly runtime?: Runtime;
  /** The task-loss fine-tune of the stitch from its least-squares fit (false: least squares only). */
  readonly fineTune?: FineTuneOptions | false;
}

export interface FineTuneOptions {
  /** Passes over the `limit` training examples (default 3). */
  readonly epochs?: number;
  /** Adam's learning rate (default 1e-3). */
  readonly lr?: number;
  /** Default 32. */
  readonly batchSize?: number;
}

export interface StitchResult {
  readonly siteA: string;
  readonly siteB: string;
  readonly kind: 'dense' | 'conv1x1';
  /** The stitch (fine-tuned when it was): W [p, q] and b [q], applied per row (per pixel for conv sites). */
  readonly weight: Tensor<'float32'>;
  readonly bias: Tensor<'float32'>;
  /**
   * Held-out accuracy of B with the stitched value (least-squares fit; `tuned`: after the task-loss fine-tune, NaN
   * without one), of B itself, and of the least-squares stitch fitted on shuffled pairs.
   */
  readonly accuracy: { readonly stitched: number; readonly tuned: number; readonly own: number; readonly shuffled: number };
  /** own − accuracy of the final stitch (the fine-tuned one when there is one). */
  readonly drop: number;
  /** own − accuracy of the least-squares stitch. */
  readonly dropLeastSquares: number;
  /** Held-out R² of the stitched value against B's own activation. */
  readonly r2: number;
  readonly checks: readonly Check[];
}

/** [N, C, H, W] → rows [N·H·W, C] (conv1x1), or [N, p] unchanged. */
function rowsOf(t: Tensor, site: string): { rows: Float32Array; p: number; spatial: number[] } {
  const d = t.data as Float32Array;
  if (t.shape.length === 2) return { rows: d, p: t.shape[1], spatial: [] };
  if (t.shape.length !== 4) throw new Error(`stitch: site '${site}' has shape [${t.shape}]; expected [N, p] or [N, C, H, W]`);
  const [n, c, h, w] = t.shape;
  const rows = new Float32Array(n * h * w * c);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) for (let s = 0; s < h * w; s++) rows[(i * h * w + s) * c + ch] = d[(i * c + ch) * h * w + s];
  return { rows, p: c, spatial: [h, w] };
}

function columnMeans(rows: Float32Array, p: number): Float64Array {
  const m = new Float64Array(p);
  const n = rows.length / p;
  for (let i = 0; i < rows.length; i++) m[i % p] += rows[i];
  return m.map((v) => v / n);
}

function centred(rows: Float32Array, mean: Float64Array): Tensor<'float32'> {
  const p = mean.length;
  return Tensor.float32(rows.map((v, i) => v - mean[i % p]), [rows.length / p, p]);
}

/** Solves (A + λI) W = B for symmetric positive A [p, p], B [p, q] by Cholesky. */
function ridgeSolve(a: Float64Array, b: Float64Array, p: number, q: number, lambda: number): Float64Array {
  const l = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * p + j] + (i === j ? lambda : 0);
      for (let k = 0; k < j; k++) s -= l[i * p + k] * l[j * p + k];
      if (i === j) {
        if (!(s > 0)) throw new Error('stitch: the normal equations are singular; raise ridge');
        l[i * p + i] = Math.sqrt(s);
      } else l[i * p + j] = s / l[j * p + j];
    }
  }
  const w = new Float64Array(p * q);
  for (let c = 0; c < q; c++) {
    const y = new Float64Array(p);
    for (let i = 0; i < p; i++) {
      let s = b[i * q + c];
      for (let k = 0; k < i; k++) s -= l[i * p + k] * y[k];
      y[i] = s / l[i * p + i];
    }
    for (let i = p - 1; i >= 0; i--) {
      let s = y[i];
      for (let k = i + 1; k < p; k++) s -= l[k * p + i] * w[k * q + c];
      w[i * q + c] = s / l[i * p + i];
    }
  }
  return w;
}

const sessions = new Map<string, Promise<RuntimeSession>>();

/** The stitch as an ONNX graph: S [N,p]·W + b (Gemm), or a 1×1 Conv of S [N,C,H,W] with W [q,p,1,1]. */
function stitchSession(runtime: Runtime, kind: 'dense' | 'conv1x1'): Promise<RuntimeSession> {
  let s = sessions.get(`${runtime.name}/${kind}`);
  if (!s) {
    const node = kind === 'dense' ? makeNode('Gemm', ['S', 'W', 'B'], ['Y'], { name: 'stitch' }) : makeNode('Conv', ['S', 'W', 'B'], ['Y'], { name: 'stitch', attributes: [attr('kernel_shape', { ints: [1, 1] })] });
    const rank = kind === 'dense' ? 2 : 4;
    const dims = (k: string) => Array.from({ length: rank }, (_, i) => `${k}${i}`);
    const graph = makeGraph({
      name: 'stitch',
      node: [node],
      input: [makeValueInfo('S', ONNX_DTYPE.float32, dims('s')), makeValueInfo('W', ONNX_DTYPE.float32, dims('w')), makeValueInfo('B', ONNX_DTYPE.float32, ['q'])],
      output: [makeValueInfo('Y', ONNX_DTYPE.float32, dims('y'))],
    });
    s = runtime.createSession(encodeModel(makeModel({ irVersion: 8n, producerName: 'glassbox', opsetImport: [{ $typeName: 'onnx.OperatorSetIdProto', domain: '', version: 17n }], graph })));
    sessions.set(`${runtime.name}/${kind}`, s);
  }
  return s;
}

function argmaxAccuracy(logits: Tensor, labels: Tensor): number {
  const [n, c] = logits.shape;
  const d = logits.data as Float32Array;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < c; k++) if (d[i * c + k] > d[i * c + best]) best = k;
    if (best === Number(labels.data[i])) hits++;
  }
  return hits;
}

/**
 * Stitches A's representation at siteA into B at siteB by a linear map fitted on `data`, and reports B's held-out
 * accuracy with the stitched value against its own (the drop) and against a stitch fitted on shuffled pairs.
 */
export async function stitch(modelA: Model, siteA: string, modelB: Model, siteB: string, data: Dataset, options: StitchOptions = {}): Promise<StitchResult> {
  const limit = options.limit ?? 1000;
  if (!Number.isInteger(limit) || limit < 2) throw new Error(`stitch: limit must be an integer ≥ 2, got ${limit}`);
  if (!data.labels && data.targetShape.length !== 0) throw new Error('stitch: data must have one class label per example');
  const tuneEpochs = options.fineTune ? options.fineTune.epochs ?? 3 : 3;
  if (!Number.isInteger(tuneEpochs) || tuneEpochs < 1) throw new Error(`stitch: fineTune.epochs must be a positive integer, got ${tuneEpochs}`);
  const test = options.test ?? data.slice(Math.min(limit, data.size - 1));
  const testLimit = Math.min(options.testLimit ?? limit, test.size);
  const runtime = options.runtime ?? (await defaultRuntime());
  const batchSize = options.batchSize ?? 100;
  const train = data.slice(0, Math.min(limit, data.size));
  const rawA = await raw(modelA, siteA, train, batchSize);
  const rawB = await raw(modelB, siteB, train, batchSize);
  if (rawA.shape.length !== rawB.shape.length || (rawA.shape.length === 4 && (rawA.shape[2] !== rawB.shape[2] || rawA.shape[3] !== rawB.shape[3]))) {
    throw new Error(`stitch: '${siteA}' [${rawA.shape}] and '${siteB}' [${rawB.shape}] cannot be joined by a dense or 1×1-conv layer (need both [N, p], or [N, C, H, W] with the same H, W)`);
  }
  const kind = rawA.shape.length === 4 ? 'conv1x1' : 'dense';
  const xa = rowsOf(rawA, siteA);
  const yb = rowsOf(rawB, siteB);
  const [p, q] = [xa.p, yb.p];
  const mx = columnMeans(xa.rows, p);
  const my = columnMeans(yb.rows, q);
  const xc = centred(xa.rows, mx);
  const yc = centred(yb.rows, my);
  const xx = await crossProduct(xc, xc, runtime);
  let tr = 0;
  for (let i = 0; i < p; i++) tr += xx[i * p + i];
  const lambda = (options.ridge ?? 1e-4) * Math.max(tr / p, 1e-12);
  const fit = async (perm: Int32Array | null) => {
    const y = perm ? Tensor.float32(Float32Array.from({ length: perm.length * q }, (_, i) => (yc.data as Float32Array)[perm[Math.floor(i / q)] * q + (i % q)]), [perm.length, q]) : yc;
    const w = ridgeSolve(xx, await crossProduct(xc, y, runtime), p, q, lambda);
    const b = new Float64Array(q);
    for (let j = 0; j < q; j++) {
      b[j] = my[j];
      for (let i = 0; i < p; i++) b[j] -= mx[i] * w[i * q + j];
    }
    return { w, b };
  };
  const real = await fit(null);
  const shuffled = await fit(permutation(xc.shape[0], options.seed ?? 1));
  // Feeds of the stitch graph: W as Gemm's [p, q] or Conv's [q, p, 1, 1], b [q].
  const feed = (s: { w: Float64Array; b: Float64Array }) => ({
    W: kind === 'dense' ? Tensor.float32(s.w, [p, q]) : Tensor.float32(Float32Array.from({ length: p * q }, (_, i) => s.w[(i % p) * q + Math.floor(i / p)]), [q, p, 1, 1]),
    B: Tensor.float32(s.b, [q]),
  });
  const stitches: [keyof typeof hits, { W: Tensor; B: Tensor }][] = [['stitched', feed(real)], ['shuffled', feed(shuffled)]];
  const hits = { stitched: 0, tuned: 0, own: 0, shuffled: 0 };
  const tune = options.fineTune === false ? undefined : options.fineTune ?? {};
  let final = stitches[0][1];
  if (tune) {
    final = await fineTune(modelB, siteB, rawA, train, kind, stitches[0][1], tune, options.seed ?? 1, runtime);
    stitches.push(['tuned', final]);
  }
  const session = await stitchSession(runtime, kind);
  let sse = 0;
  let sst = 0;
  const inA = modelA.inputs[0].name;
  const inB = modelB.inputs[0].name;
  const outB = modelB.outputs[0].name;
  for (let start = 0; start < testLimit; start += batchSize) {
    const bt = test.slice(start, Math.min(testLimit, start + batchSize));
    const batch = bt.gather(Array.from({ length: bt.size }, (_, i) => i));
    const a = (await modelA.run({ [inA]: batch.x }, { capture: [siteA] })).captures[siteA];
    const own = await modelB.run({ [inB]: batch.x }, { capture: [siteB] });
    hits.own += argmaxAccuracy(own.outputs[outB], batch.y);
    for (const [which, s] of stitches) {
      const value = (await session.run({ S: a, ...s })).Y;
      const logits = (await modelB.run({ [inB]: batch.x }, { interventions: [{ kind: 'set', site: siteB, value }] })).outputs[outB];
      hits[which] += argmaxAccuracy(logits, batch.y);
      if (which === 'stitched') {
        const v = value.data as Float32Array;
        const t = own.captures[siteB].data as Float32Array;
        const hw = v.length / (bt.size * q); // 1 for dense [N, q]; H·W for [N, q, H, W]
        for (let i = 0; i < v.length; i++) {
          sse += (v[i] - t[i]) ** 2;
          sst += (t[i] - my[Math.floor(i / hw) % q]) ** 2;
        }
      }
    }
  }
  const accuracy = { stitched: hits.stitched / testLimit, tuned: tune ? hits.tuned / testLimit : NaN, own: hits.own / testLimit, shuffled: hits.shuffled / testLimit };
  const dropLeastSquares = accuracy.own - accuracy.stitched;
  const drop = tune ? accuracy.own - accuracy.tuned : dropLeastSquares;
  const r2 = 1 - sse / sst;
  const tolerance = options.tolerance ?? 0.02;
  const checks: Check[] = [
    { name: 'accuracy drop', value: drop, passed: drop <= tolerance, detail: `B's held-out accuracy ${accuracy.own.toFixed(4)} alone, ${(tune ? accuracy.tuned : accuracy.stitched).toFixed(4)} stitched from A's '${siteA}'${tune ? ' (fine-tuned)' : ''} (drop ${drop.toFixed(4)}, tolerance ${tolerance})` },
    { name: 'shuffled-pairs baseline', value: accuracy.shuffled, passed: accuracy.stitched > accuracy.shuffled, detail: `a stitch fitted with the training pairs shuffled gives ${accuracy.shuffled.toFixed(4)}: what an unrelated representation reaches` },
    { name: 'stitch fit R²', value: r2, detail: `held-out R² of the least-squares stitched value against B's own '${siteB}'` },
  ];
  if (tune) checks.push({ name: 'task-loss fine-tune', value: accuracy.tuned - accuracy.stitched, passed: accuracy.tuned >= accuracy.stitched, detail: `held-out accuracy ${accuracy.stitched.toFixed(4)} after least squares, ${accuracy.tuned.toFixed(4)} after training the stitch on B's loss (drop ${dropLeastSquares.toFixed(4)} → ${drop.toFixed(4)})` });
  // W back to [p, q] row-major.
  const w = final.W.data as Float32Array;
  const weight = kind === 'dense' ? Tensor.float32(w, [p, q]) : Tensor.float32(Float32Array.from({ length: p * q }, (_, i) => w[(i % q) * p + Math.floor(i / q)]), [p, q]);
  return { siteA, siteB, kind, weight, bias: final.B as Tensor<'float32'>, accuracy, drop, dropLeastSquares, r2, checks };
}

/**
 * B's layers after siteB behind the stitch, as a model whose input is A's activation: `stitch.in` → Gemm (dense) or
 * 1×1 Conv with weights `stitch.W`, `stitch.b` → siteB's value → B's layers on to its outputs.
 */
export function stitchedModel(modelB: Model, siteB: string, kind: 'dense' | 'conv1x1', inShape: readonly number[], init: { W: Tensor; B: Tensor }): { model: ModelProto; weights: [string, string] } {
  const value = modelB.site(siteB).value;
  const cut = cutEdge(modelB.graph, value, 'float32'); // siteB's value becomes an input; what only fed it is pruned
  const others = cut.proto.input.filter((i) => i.name !== value && !cut.initializers.has(i.name));
  if (others.length) throw new Error(`stitch: B's outputs read its input '${others[0].name}' other than through '${siteB}' (a path around the site); stitch at a site every path passes through`);
  const [input, w, b] = ['stitch.in', 'stitch.W', 'stitch.b'].map((n) => freshName(cut, n));
  const node =
    kind === 'dense' ? makeNode('Gemm', [input, w, b], [value], { name: 'stitch' }) : makeNode('Conv', [input, w, b], [value], { name: 'stitch', attributes: [attr('kernel_shape', { ints: [1, 1] })] });
  const graph = cut.withGraph({
    input: [makeValueInfo(input, ONNX_DTYPE.float32, ['N', ...inShape])],
    node: [node, ...cut.nodes],
    initializer: [...cut.proto.initializer, tensorToProto(init.W, w), tensorToProto(init.B, b)],
  });
  return { model: graph.model, weights: [w, b] };
}

/** Trains the stitch's W and b on B's cross-entropy over A's captured activations, every other weight frozen. */
async function fineTune(modelB: Model, siteB: string, rawA: Tensor, train: Dataset, kind: 'dense' | 'conv1x1', init: { W: Tensor; B: Tensor }, o: FineTuneOptions, seed: number, runtime: Runtime): Promise<{ W: Tensor; B: Tensor }> {
  const epochs = o.epochs ?? 3;
  const [n, ...rest] = rawA.shape;
  const { model, weights } = stitchedModel(modelB, siteB, kind, rest, init);
  const per = rest.reduce((a, b) => a * b, 1);
  const src = rawA.data as Float32Array;
  const y = train.gather(Array.from({ length: n }, (_, i) => i)).y.data as BigInt64Array;
  const acts = dataset({
    name: `activations at '${siteB}'`,
    size: n,
    inputShape: rest,
    inputDType: 'float32',
    numClasses: train.numClasses,
    labels: Array.from(y, Number),
    gather: (ix) => {
      const x = new Float32Array(ix.length * per);
      ix.forEach((i, k) => x.set(src.subarray(i * per, (i + 1) * per), k * per));
      return { x: Tensor.float32(x, [ix.length, ...rest]), y: Tensor.int64(Array.from(ix, (i) => y[i]), [ix.length]) };
    },
  });
  const trainer = await Trainer.create(model, { optimizer: { kind: 'adam', lr: o.lr ?? 1e-3 }, weights, runtime });
  await trainer.fit(acts, { epochs, batchSize: o.batchSize ?? 32, seed });
  const [w, b] = weights.map((k) => trainer.weights.get(k)!);
  return { W: Tensor.float32(Float32Array.from(w.data), w.shape), B: Tensor.float32(Float32Array.from(b.data), b.shape) };
}

async function raw(model: Model, site: string, data: Dataset, batchSize: number): Promise<Tensor> {
  const parts: Tensor[] = [];
  const input = model.inputs[0].name;
  for (const b of data.batches(batchSize)) parts.push((await model.run({ [input]: b.x }, { capture: [site] })).captures[site]);
  const [, ...rest] = parts[0].shape;
  const per = rest.reduce((a, b) => a * b, 1);
  const out = new Float32Array(data.size * per);
  let at = 0;
  for (const t of parts) {
    out.set(t.data as Float32Array, at);
    at += t.data.length;
  }
  return Tensor.float32(out, [data.size, ...rest]);
}
