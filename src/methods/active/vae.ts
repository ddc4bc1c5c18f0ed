/**
 * β-VAE (Higgins et al. 2017, "β-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework";
 * Kingma & Welling 2014 for the VAE): an MLP encoder x → (μ, log σ²), the reparametrised sample z = μ + σ·ε, an MLP
 * decoder z → x̂ with a Bernoulli (sigmoid cross-entropy) or unit-variance Gaussian likelihood, trained on
 * `reconstruction + β·KL(q(z|x) ‖ N(0, I))`. β > 1 presses the posterior towards the factorised prior, which is
 * claimed to align latent dimensions with independent generative factors (Räuker et al. 2023, §V disentanglement).
 *
 * The trained model is the encoder (x → codes = μ ‖ log σ², [N, 2L]); the decoder's weights ride along as its
 * initializers and its nodes are appended by the reconstruction term, so the trainer's `head: 'none'` step trains
 * both. ε is an extra input fed per batch from a seeded stream, so training is reproducible. `decoderModel` turns the
 * trained weights into a stand-alone decoder (z → logits of x̂) for traversals.
 *
 * @example
 * const vae = betaVae([1, 28, 28], 8, 4, { seed: 1 });
 * const trainer = await Trainer.create(vae.model, { optimizer: { kind: 'adam', lr: 1e-3 }, head: 'none', terms: vae.terms });
 * await trainer.fit(factorDataset(), { epochs: 5, batchSize: 64, seed: 1, extra: vae.extra });
 * const decoder = await Model.load(encodeModel(vae.decoderModel(trainer.exportModel())));
 */
import type { Batch } from '../../data/datasets/dataset.js';
import type { FactorDataset } from '../../data/datasets/factors.js';
import { mixSeed, mulberry32 } from '../../data/datasets/random.js';
import { Net } from '../../model/builders/net.js';
import { Model } from '../../model/model.js';
import { Trainer, type EpochRecord, type LossTerm, type TermBuilder } from '../../model/train/index.js';
import { attr, encodeModel, type ModelProto } from '../../onnx/proto.js';
import { imageGrid } from '../../report/grid.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { gaussian } from '../representations/adversarial.js';
import { dci, mig, type DciResult, type Matrix, type MigResult } from '../representations/disentanglement.js';
import { active, RAUKER_INTRINSIC, type MethodInfo } from '../taxonomy.js';

export type Likelihood = 'bernoulli' | 'gaussian';

export interface VaeOptions {
  /** Width of the one hidden layer of encoder and decoder (default 256). */
  readonly hidden?: number;
  /** 'bernoulli' (default: sigmoid cross-entropy, inputs in [0, 1]) or 'gaussian' (½‖x − x̂‖², unit variance). */
  readonly likelihood?: Likelihood;
  /** Seed of the initial weights and of the ε stream (default 1). */
  readonly seed?: number;
}

/** What `glassbox train --vae` hands the trainer (with `head: 'none'`), and how to read the result. */
export interface BetaVae {
  /** The encoder x → codes [N, 2L] (μ then log σ²), with the decoder's weights as extra initializers. */
  readonly model: ModelProto;
  /** 'reconstruction' (weight 1) and 'kl' (weight β), both means over the batch of per-example sums. */
  readonly terms: readonly LossTerm[];
  /** ε ~ N(0, I) [B, L] for each batch, from a seeded stream (the k-th call draws the k-th block). */
  readonly extra: (batch: Batch) => Record<string, Tensor>;
  /** The decoder z [N, L] → logits (Bernoulli) or means (Gaussian) [N, D] with the trained weights of `trained`. */
  decoderModel(trained: ModelProto): ModelProto;
  readonly latent: number;
  readonly beta: number;
  readonly inputSize: number;
  readonly likelihood: Likelihood;
}

/** The name of the ε input the reconstruction term feeds. */
export const EPSILON_INPUT = 'vae_epsilon';
const keep0 = [attr('keepdims', { int: 0 })];

/** The decoder as its own graph: z → hidden → D (weights `dec.fc1.*`, `dec.fc2.*`). */
function decoderNet(latent: number, hidden: number, size: number, seed: number): ModelProto {
  const net = new Net(seed);
  const h = net.op('dec/relu', 'Relu', [net.linear('dec/fc1', 'z', latent, hidden)]);
  net.linear('dec/fc2', h, hidden, size, 'recon');
  return net.model({ name: 'vae-decoder', doc: `β-VAE decoder: ${latent} → ${hidden} → ${size}`, input: { name: 'z', dtype: 'float32', shape: ['N', latent] }, output: { name: 'recon', shape: ['N', size] } });
}

/** Slices columns [from, to) of a [N, C] value. */
function columns(b: TermBuilder, v: string, from: number, to: number): string {
  return b.op('Slice', [v, b.constant(Tensor.int64([from])), b.constant(Tensor.int64([to])), b.constant(Tensor.int64([1]))]);
}

/** Mean over the batch of the per-example sum of a [N, K] value. */
function batchMeanOfSums(b: TermBuilder, v: string): string {
  return b.op('ReduceMean', [b.op('ReduceSum', [v, b.constant(Tensor.int64([1]))], keep0)], keep0);
}

/** KL(N(μ, σ²) ‖ N(0, 1)) per dimension, in nats: ½(μ² + σ² − log σ² − 1). */
export function klPerDimension(mu: number, logvar: number): number {
  return 0.5 * (mu * mu + Math.exp(logvar) - logvar - 1);
}

/**
 * The β-VAE for inputs of `inputShape` ([C, H, W] or [D]) with `latent` dimensions; the trainer's loss is
 * reconstruction + β·KL. See the module doc.
 */
export function betaVae(inputShape: readonly number[], latent: number, beta: number, options: VaeOptions = {}): BetaVae {
  if (inputShape.length === 0 || inputShape.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`betaVae: input shape must be positive integers, got [${inputShape.join(', ')}]`);
  if (!Number.isInteger(latent) || latent < 1) throw new Error(`betaVae: latent size must be a positive integer, got ${latent}`);
  if (!(Number.isFinite(beta) && beta >= 0)) throw new Error(`betaVae: β must be a finite number ≥ 0, got ${beta}`);
  const hidden = options.hidden ?? 256;
  if (!Number.isInteger(hidden) || hidden < 1) throw new Error(`betaVae: hidden width must be a positive integer, got ${hidden}`);
  const likelihood = options.likelihood ?? 'bernoulli';
  if (likelihood !== 'bernoulli' && likelihood !== 'gaussian') throw new Error(`betaVae: likelihood must be 'bernoulli' or 'gaussian', got '${String(likelihood)}'`);
  const seed = options.seed ?? 1;
  const size = inputShape.reduce((a, b) => a * b, 1);

  const net = new Net(seed);
  const flat = inputShape.length > 1 ? net.op('flatten', 'Flatten', ['x'], [attr('axis', { int: 1 })]) : 'x'; // [N, D]
  const h = net.op('enc/relu', 'Relu', [net.linear('enc/fc1', flat, size, hidden)]);
  net.linear('enc/fc2', h, hidden, 2 * latent, 'codes');
  const encoder = net.model({ name: 'beta-vae', doc: `β-VAE encoder (β = ${beta}): ${size} → ${hidden} → μ, log σ² (${latent} each)`, input: { name: 'x', dtype: 'float32', shape: ['N', ...inputShape] }, output: { name: 'codes', shape: ['N', 2 * latent] } });
  const decoder = decoderNet(latent, hidden, size, mixSeed(seed, 1));
  const model: ModelProto = { ...encoder, graph: { ...encoder.graph!, initializer: [...encoder.graph!.initializer, ...decoder.graph!.initializer] } };

  const kl: LossTerm = {
    name: 'kl',
    weight: beta,
    build(b) {
      const mu = columns(b, b.logits, 0, latent);
      const logvar = columns(b, b.logits, latent, 2 * latent);
      // ½(μ² + exp(lv) − lv − 1), summed over dimensions, mean over the batch.
      const inner = b.op('Sub', [b.op('Add', [b.op('Mul', [mu, mu]), b.op('Exp', [logvar])]), b.op('Add', [logvar, b.constant(Tensor.float32([1], []))])]);
      return b.op('Mul', [batchMeanOfSums(b, inner), b.constant(Tensor.float32([0.5], []))]);
    },
  };
  const reconstruction: LossTerm = {
    name: 'reconstruction',
    weight: 1,
    build(b) {
      const mu = columns(b, b.logits, 0, latent);
      const sigma = b.op('Exp', [b.op('Mul', [columns(b, b.logits, latent, 2 * latent), b.constant(Tensor.float32([0.5], []))])]);
      const z = b.op('Add', [mu, b.op('Mul', [sigma, b.feed(EPSILON_INPUT, 'float32', ['N', latent])])]); // [N, L]
      // The decoder's nodes, replayed on z; its weights are the model's initializers, so they are trained.
      const at = new Map<string, string>([['z', z]]);
      for (const n of decoder.graph!.node) {
        const out = b.op(n.opType, n.input.map((v) => at.get(v) ?? v), n.attribute);
        at.set(n.output[0], out);
      }
      const logits = at.get('recon')!;
      const x = inputShape.length > 1 ? b.op('Flatten', [b.input], [attr('axis', { int: 1 })]) : b.input;
      const perPixel =
        likelihood === 'bernoulli'
          ? b.op('Sub', [b.op('Softplus', [logits]), b.op('Mul', [x, logits])]) // −log p(x | logits), sigmoid cross-entropy
          : b.op('Mul', [b.op('Pow', [b.op('Sub', [logits, x]), b.constant(Tensor.float32([2], []))]), b.constant(Tensor.float32([0.5], []))]);
      return batchMeanOfSums(b, perPixel);
    },
  };

  let calls = 0;
  const extra = (batch: Batch): Record<string, Tensor> => {
    const n = batch.x.shape[0];
    const rand = mulberry32(mixSeed(seed, 7919, calls++));
    return { [EPSILON_INPUT]: Tensor.float32(Float32Array.from({ length: n * latent }, () => gaussian(rand)), [n, latent]) };
  };

  const decoderModel = (trained: ModelProto): ModelProto => {
    const weights = new Map(trained.graph!.initializer.map((t) => [t.name, t]));
    const init = decoder.graph!.initializer.map((t) => {
      const w = weights.get(t.name);
      if (!w) throw new Error(`betaVae.decoderModel: the trained model has no weight '${t.name}' (is it this VAE's encoder?)`);
      if (w.dims.join() !== t.dims.join()) throw new Error(`betaVae.decoderModel: weight '${t.name}' has shape [${w.dims.join(', ')}], this VAE's decoder needs [${t.dims.join(', ')}]`);
      return w;
    });
    return { ...decoder, graph: { ...decoder.graph!, initializer: init } };
  };

  return { model, terms: [reconstruction, kl], extra, decoderModel, latent, beta, inputSize: size, likelihood };
}

/** Per-example reconstruction loss (nats for Bernoulli) of x [D] from decoder output `out` [D], as the term computes it. */
export function reconstructionLoss(x: ArrayLike<number>, out: ArrayLike<number>, likelihood: Likelihood): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    const l = out[i];
    s += likelihood === 'bernoulli' ? Math.max(l, 0) + Math.log1p(Math.exp(-Math.abs(l))) - x[i] * l : 0.5 * (l - x[i]) ** 2;
  }
  return s;
}

/** One trained VAE, scored on the factor data. */
export interface VaeRun {
  readonly beta: number;
  readonly likelihood: Likelihood;
  /** The trained encoder (with the decoder's weights) and the stand-alone decoder. */
  readonly proto: ModelProto;
  readonly encoder: Model;
  readonly decoder: Model;
  /** Mean per-example reconstruction loss at z = μ (nats for Bernoulli). */
  readonly reconstruction: number;
  /** Mean per-example KL(q(z|x) ‖ N(0, I)) in nats, and its share per latent dimension. */
  readonly kl: number;
  readonly klPerDimension: readonly number[];
  /** Latent means [n, L] of every example, and their MIG and DCI against the known factors. */
  readonly means: Float32Array;
  readonly mig: MigResult;
  readonly dci: DciResult;
  readonly history: readonly EpochRecord[];
  readonly seconds: number;
}

export interface VaeTrainOptions {
  readonly beta: number;
  /** Latent dimensions (default 8), hidden width (default 256). */
  readonly latent?: number;
  readonly hidden?: number;
  readonly epochs: number;
  readonly batchSize: number;
  /** Seed of the weights, the ε stream and the shuffling. */
  readonly seed: number;
  /** Adam's learning rate (default 1e-3). */
  readonly lr?: number;
  readonly likelihood?: Likelihood;
}

function latentMatrix(data: FactorDataset): Matrix {
  return { data: data.factorMatrix(), rows: data.size, cols: data.factorNames.length };
}

/** Trains a β-VAE on `data` and scores its latent means with MIG and DCI against the data's factors. */
export async function trainVae(data: FactorDataset, options: VaeTrainOptions): Promise<VaeRun> {
  const latent = options.latent ?? 8;
  const started = performance.now();
  const vae = betaVae(data.inputShape, latent, options.beta, { hidden: options.hidden, seed: options.seed, likelihood: options.likelihood });
  const trainer = await Trainer.create(vae.model, { optimizer: { kind: 'adam', lr: options.lr ?? 1e-3 }, head: 'none', terms: vae.terms });
  let proto: ModelProto;
  let history: readonly EpochRecord[];
  try {
    history = (await trainer.fit(data, { epochs: options.epochs, batchSize: options.batchSize, seed: options.seed, extra: vae.extra })).history;
    proto = trainer.exportModel();
  } finally {
    await trainer.dispose();
  }
  const encoder = await Model.load(encodeModel(proto));
  const decoder = await Model.load(encodeModel(vae.decoderModel(proto)));
  const means = new Float32Array(data.size * latent);
  const klDims = new Float64Array(latent);
  let recon = 0;
  for (const b of data.batches(256)) {
    const codes = (await encoder.run({ x: b.x })).outputs.codes.data as Float32Array; // [B, 2L]
    const n = b.x.shape[0];
    const mu = new Float32Array(n * latent);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < latent; j++) {
        mu[i * latent + j] = codes[i * 2 * latent + j];
        klDims[j] += klPerDimension(codes[i * 2 * latent + j], codes[i * 2 * latent + latent + j]);
      }
    }
    b.indices.forEach((row, i) => means.set(mu.subarray(i * latent, (i + 1) * latent), row * latent));
    const out = (await decoder.run({ z: Tensor.float32(mu, [n, latent]) })).outputs.recon.data as Float32Array;
    const x = b.x.data as Float32Array;
    for (let i = 0; i < n; i++) recon += reconstructionLoss(x.subarray(i * vae.inputSize, (i + 1) * vae.inputSize), out.subarray(i * vae.inputSize, (i + 1) * vae.inputSize), vae.likelihood);
  }
  const codes: Matrix = { data: means, rows: data.size, cols: latent };
  const klPerDim = Array.from(klDims, (v) => v / data.size);
  return {
    beta: options.beta, likelihood: vae.likelihood, proto, encoder, decoder, means, history,
    reconstruction: recon / data.size,
    kl: klPerDim.reduce((a, b) => a + b, 0),
    klPerDimension: klPerDim,
    mig: mig(codes, latentMatrix(data)),
    dci: dci(codes, latentMatrix(data)),
    seconds: (performance.now() - started) / 1000,
  };
}

export interface VaeComparison {
  /** β > 1, and the plain VAE (β = 1): same architecture, seed, data and epochs. */
  readonly regularized: VaeRun;
  readonly twin: VaeRun;
  readonly checks: Check[];
}

/**
 * A β-VAE against its plain twin (β = 1) on the same factor data: the reconstruction it gives up, the KL it saves, and
 * the MIG and DCI disentanglement it claims to gain. Pass `twin` to reuse a plain VAE trained with the same options.
 */
export async function compareBetaVae(data: FactorDataset, options: VaeTrainOptions & { readonly twin?: VaeRun }): Promise<VaeComparison> {
  if (!(options.beta > 1)) throw new Error(`compareBetaVae: β must exceed 1 (the twin is the plain VAE, β = 1), got ${options.beta}`);
  const regularized = await trainVae(data, options);
  const twin = options.twin ?? (await trainVae(data, { ...options, beta: 1 }));
  if (twin.beta !== 1) throw new Error(`compareBetaVae: the twin given has β = ${twin.beta}, not 1`);
  const f = (v: number) => v.toFixed(3);
  const side = (name: string, a: number, b: number) => `${name} ${f(a)} (β = ${options.beta}) vs ${f(b)} (β = 1)`;
  return {
    regularized, twin,
    checks: [
      { name: 'reconstruction cost', value: regularized.reconstruction - twin.reconstruction, detail: side('mean reconstruction loss per image, nats,', regularized.reconstruction, twin.reconstruction) },
      { name: 'KL saved', value: twin.kl - regularized.kl, passed: regularized.kl < twin.kl, detail: side('mean KL(q(z|x) ‖ N(0, I)) per image, nats,', regularized.kl, twin.kl) },
      { name: 'MIG gain', value: regularized.mig.score - twin.mig.score, passed: regularized.mig.score > twin.mig.score, detail: side('MIG of the latent means against the known factors', regularized.mig.score, twin.mig.score) },
      {
        name: 'DCI disentanglement gain',
        value: regularized.dci.disentanglement - twin.dci.disentanglement,
        passed: regularized.dci.disentanglement > twin.dci.disentanglement,
        detail: side('DCI disentanglement', regularized.dci.disentanglement, twin.dci.disentanglement),
      },
    ],
  };
}

export interface Traversal {
  /** Decoded images [L·steps, C, H, W], row j = latent j swept over `values` with the others at the base code. */
  readonly images: Tensor<'float32'>;
  readonly values: readonly number[];
  /** Mean absolute change of the decoded pixels (probabilities or means) across each dimension's sweep. */
  readonly change: readonly number[];
  /** The grid as a PNG: one row per latent dimension. */
  readonly png: Uint8Array;
}

/** Latent traversal (Higgins et al. 2017, fig. 1): decode the base code with z_j swept over [−range, range]. */
export async function latentTraversal(run: VaeRun, base: ArrayLike<number>, imageShape: readonly number[], options: { range?: number; steps?: number } = {}): Promise<Traversal> {
  const latent = run.klPerDimension.length;
  const range = options.range ?? 3;
  const steps = options.steps ?? 7;
  if (base.length !== latent) throw new Error(`latentTraversal: the base code has ${base.length} values, the VAE ${latent} latent dimensions`);
  if (!Number.isInteger(steps) || steps < 2 || !(range > 0)) throw new Error(`latentTraversal: needs steps ≥ 2 and range > 0, got ${steps} and ${range}`);
  const size = imageShape.reduce((a, b) => a * b, 1);
  const values = Array.from({ length: steps }, (_, s) => -range + (2 * range * s) / (steps - 1));
  const z = new Float32Array(latent * steps * latent);
  for (let j = 0; j < latent; j++) {
    for (let s = 0; s < steps; s++) {
      const row = (j * steps + s) * latent;
      for (let k = 0; k < latent; k++) z[row + k] = base[k];
      z[row + j] = values[s];
    }
  }
  const out = Float32Array.from((await run.decoder.run({ z: Tensor.float32(z, [latent * steps, latent]) })).outputs.recon.data as Float32Array);
  if (run.likelihood === 'bernoulli') for (let i = 0; i < out.length; i++) out[i] = 1 / (1 + Math.exp(-out[i]));
  const change = Array.from({ length: latent }, (_, j) => {
    let c = 0;
    for (let s = 1; s < steps; s++) for (let p = 0; p < size; p++) c += Math.abs(out[(j * steps + s) * size + p] - out[(j * steps + s - 1) * size + p]);
    return c / size;
  });
  const images = Tensor.float32(out, [latent * steps, ...(imageShape.length === 3 ? imageShape : [1, 1, size])]);
  return { images, values, change, png: imageGrid(images, { columns: steps, pad: 1, scale: 2 }) };
}

export const VAE_METHODS = {
  'beta-vae': {
    info: {
      title: 'β-VAE disentanglement, against the plain VAE',
      reference: 'Higgins et al. 2017, β-VAE: Learning basic visual concepts with a constrained variational framework',
      taxonomy: active('hidden semantics', 'global', RAUKER_INTRINSIC.disentanglement),
      stochastic: true,
    },
    run: compareBetaVae,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
