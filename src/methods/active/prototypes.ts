/**
 * A prototype network trained with its explanations built in (Li, Liu, Chen, Rudin 2018, "Deep Learning for
 * Case-Based Reasoning through Prototypes: A Neural Network that Explains Its Predictions"): an autoencoder (encoder f,
 * decoder g) and a layer of m prototype vectors p_j in its latent space; the classifier reads only the squared
 * distances, logits = W·[−‖f(x) − p_j‖²]_j, so every decision is "x is this close to these prototypes". The loss is
 * cross-entropy + λ·reconstruction + λ1·R1 (every prototype near some encoded example: it decodes to a realistic image)
 * + λ2·R2 (every encoded example near some prototype), all in one ONNX step graph (R1, R2 are minima over the batch).
 *
 * Evidence carried: accuracy against an unregularised twin (the same encoder with a linear head, same data, seed and
 * epochs); every decoded prototype closer to its nearest training image than random training images are to each other
 * (and, a stricter control, how many are closer than the blurry mean image is to its own nearest);
 * the logits equal W·(−d) recomputed on the host; after the optional projection onto the nearest encoding, distance 0.
 *
 * @example
 * const r = await trainPrototypeAutoencoder(train, test, { prototypes: 15, epochs: 2, seed: 1 });
 * await writeFile('prototypes.png', imageGrid(r.decoded, { scale: 3 }));
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import { checkSizes, mlp } from '../../model/builders/mlp.js';
import { int64s, Net } from '../../model/builders/net.js';
import { uniform } from '../../model/builders/init.js';
import { Model } from '../../model/model.js';
import { Trainer, type EpochRecord, type LossTerm } from '../../model/train/index.js';
import type { TermBuilder } from '../../model/train/terms.js';
import { Graph } from '../../onnx/graph.js';
import { attr, encodeModel, type ModelProto } from '../../onnx/proto.js';
import { tensorFromProto, tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { active, RAUKER_INTRINSIC, type Taxonomy } from '../taxonomy.js';

/** Names of the values and weights of a prototype autoencoder, for captures and terms. */
export const LI = { latent: 'latent', recon: 'recon', distances: 'proto_dist', logits: 'logits', prototypes: 'prototypes', last: 'last.weight' } as const;

export interface PrototypeAutoencoderSpec {
  /** One example's shape: [C, H, W] for images, [features] for tabular data. */
  readonly input: readonly number[];
  readonly classes: number;
  /** m, the number of prototypes (Li et al.: 15 for MNIST). */
  readonly prototypes: number;
  /** Latent width (default 16). */
  readonly latent?: number;
  /** Hidden widths of the encoder (the decoder mirrors them; default [128]). */
  readonly hidden?: readonly number[];
  readonly seed: number;
}

/**
 * The model: x → encoder (Linear + ReLU…, Linear + Sigmoid) → `latent` [N, d]; `recon` = decoder(latent) (mirrored
 * layers, Sigmoid, the input's shape); `proto_dist` [N, m] = ‖latent − p_j‖²; `logits` = −proto_dist · W, W [m, classes]
 * (no bias, as in the paper). Prototypes start U(0, 1) like the encodings they live among.
 */
export function prototypeAutoencoder(spec: PrototypeAutoencoderSpec): ModelProto {
  const { d, hidden, width } = checkSpec(spec);
  const net = new Net(spec.seed);
  let h = spec.input.length > 1 ? net.op('flatten', 'Flatten', ['x'], [attr('axis', { int: 1 })]) : 'x'; // [N, C·H·W]
  let w = width;
  hidden.forEach((out, i) => {
    h = net.op(`enc${i + 1}`, 'Relu', [net.linear(`enc${i + 1}`, h, w, out)]);
    w = out;
  });
  const z = net.op('latent', 'Sigmoid', [net.linear('latent', h, w, d)], [], [LI.latent]); // [N, d]
  decoder(net, z, spec);
  const p = net.param(LI.prototypes, Tensor.float32(Array.from({ length: spec.prototypes * d }, net.rand), [spec.prototypes, d]));
  const diff = net.op('protos', 'Sub', [net.op('protos', 'Unsqueeze', [z, net.constant('protos', int64s([1]))]), net.op('protos', 'Unsqueeze', [p, net.constant('protos', int64s([0]))])]); // [N, m, d]
  const dist = net.op('protos', 'ReduceSum', [net.op('protos', 'Mul', [diff, diff]), net.constant('protos', int64s([2]))], [attr('keepdims', { int: 0 })], [LI.distances]); // [N, m]
  const W = net.param(LI.last, uniform(net.rand, [spec.prototypes, spec.classes], 1 / Math.sqrt(spec.prototypes)));
  net.op('last', 'MatMul', [net.op('last', 'Neg', [dist]), W], [], [LI.logits]);
  return net.model({
    name: 'prototype-autoencoder',
    doc: `Li et al. 2018 prototype network: ${spec.input.join('×')} → [${hidden.join(', ')}] → latent ${d}, ${spec.prototypes} prototypes → ${spec.classes} classes`,
    input: { name: 'x', dtype: 'float32', shape: ['N', ...spec.input] },
    output: { name: LI.logits, shape: ['N', spec.classes] },
  });
}

/** The decoder alone, latent [N, d] → `recon` [N, ...input], with the weights of a trained prototype autoencoder. */
export function decoderModel(spec: PrototypeAutoencoderSpec, trained: ModelProto): ModelProto {
  const { d } = checkSpec(spec);
  const net = new Net(spec.seed);
  decoder(net, 'z', spec);
  const model = net.model({ name: 'decoder', doc: 'Li et al. decoder g', input: { name: 'z', dtype: 'float32', shape: ['N', d] }, output: { name: LI.recon, shape: ['N', ...spec.input] } });
  return withWeights(model, trained);
}

function decoder(net: Net, z: string, spec: PrototypeAutoencoderSpec): string {
  const { d, hidden, width } = checkSpec(spec);
  let h = z;
  let w = d;
  [...hidden].reverse().forEach((out, i) => {
    h = net.op(`dec${i + 1}`, 'Relu', [net.linear(`dec${i + 1}`, h, w, out)]);
    w = out;
  });
  const flat = net.op('recon', 'Sigmoid', [net.linear('recon', h, w, width)]); // [N, C·H·W]
  return net.op('recon', 'Reshape', [flat, net.constant('recon', int64s([-1, ...spec.input]))], [], [LI.recon]);
}

function checkSpec(spec: PrototypeAutoencoderSpec): { d: number; hidden: readonly number[]; width: number } {
  const d = spec.latent ?? 16;
  const hidden = spec.hidden ?? [128];
  const dims = Object.fromEntries(spec.input.map((v, i) => [`input[${i}]`, v]));
  checkSizes('prototype autoencoder', { ...dims, classes: spec.classes, prototypes: spec.prototypes, latent: d }, hidden);
  if (spec.input.length === 0) throw new Error('prototype autoencoder: input shape is empty');
  return { d, hidden, width: spec.input.reduce((a, b) => a * b, 1) };
}

/** Weights of the paper's loss, relative to a cross-entropy of weight 1 (Li et al.: 20, 1, 1, 1 → 1, 0.05, 0.05, 0.05). */
export interface PrototypeTermWeights {
  readonly reconstruction?: number;
  readonly r1?: number;
  readonly r2?: number;
}

const keep0 = [attr('keepdims', { int: 0 })];
const minOver = (b: TermBuilder, v: string, axis: number) => b.op('ReduceMin', [v], [attr('axes', { ints: [axis] }), ...keep0]);
const mean = (b: TermBuilder, v: string) => b.op('ReduceMean', [v], keep0);

/** The three loss terms of Li et al. beside the cross-entropy: reconstruction, R1, R2. */
export function prototypeAutoencoderTerms(weights: PrototypeTermWeights = {}): LossTerm[] {
  const w = { reconstruction: weights.reconstruction ?? 0.05, r1: weights.r1 ?? 0.05, r2: weights.r2 ?? 0.05 };
  for (const [k, v] of Object.entries(w)) if (!(v >= 0)) throw new Error(`prototype terms: weight '${k}' must be ≥ 0, got ${v}`);
  return [
    {
      // mean over the batch of ‖g(f(x)) − x‖², summed over pixels
      name: 'reconstruction',
      weight: w.reconstruction,
      build: (b) => {
        const e = b.op('Sub', [b.op('Flatten', [b.site(LI.recon)], [attr('axis', { int: 1 })]), b.op('Flatten', [b.input], [attr('axis', { int: 1 })])]);
        return mean(b, b.op('ReduceSum', [b.op('Mul', [e, e]), b.constant(Tensor.int64([1]))], keep0));
      },
    },
    // R1 = mean_j min_i ‖p_j − f(x_i)‖²: each prototype near some encoded example of the batch
    { name: 'r1', weight: w.r1, build: (b) => mean(b, minOver(b, b.site(LI.distances), 0)) },
    // R2 = mean_i min_j ‖f(x_i) − p_j‖²: each encoded example near some prototype
    { name: 'r2', weight: w.r2, build: (b) => mean(b, minOver(b, b.site(LI.distances), 1)) },
  ];
}

// ---- helpers shared with protopnet.ts ----

/** How long and how fast both twins train. */
export interface FitSettings {
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly lr?: number;
  /** Seed of the weights and of the shuffling (the twin gets the same). */
  readonly seed?: number;
}

export const fitDefaults = (f: FitSettings) => ({ epochs: f.epochs ?? 2, batchSize: f.batchSize ?? 32, lr: f.lr ?? 3e-3, seed: f.seed ?? 1 });

/** A float32 initializer of a model, by name. */
export function weightOf(model: ModelProto, name: string): Tensor<'float32'> {
  const t = model.graph?.initializer.find((i) => i.name === name);
  if (!t) throw new Error(`prototype model: no weight '${name}'`);
  return tensorFromProto(t) as Tensor<'float32'>;
}

/** The model with some initializers replaced (by name; every name must exist). */
export function setWeights(model: ModelProto, weights: ReadonlyMap<string, Tensor>): ModelProto {
  const g = new Graph(model);
  for (const k of weights.keys()) if (!g.initializers.has(k)) throw new Error(`prototype model: no weight '${k}' to set`);
  return g.withGraph({ initializer: g.proto.initializer.map((t) => (weights.has(t.name) ? tensorToProto(weights.get(t.name)!, t.name) : t)) }).model;
}

/** `model` with the weights of `from` wherever the names match. */
function withWeights(model: ModelProto, from: ModelProto): ModelProto {
  const names = new Set(model.graph!.initializer.map((t) => t.name));
  return setWeights(model, new Map(from.graph!.initializer.filter((t) => names.has(t.name)).map((t) => [t.name, tensorFromProto(t)])));
}

/** Argmax accuracy of a model's logits over a dataset, in batches. */
export async function accuracyOf(model: Model, data: Dataset, batchSize = 500): Promise<number> {
  let correct = 0;
  for (const b of data.batches(batchSize)) {
    const logits = (await model.run({ x: b.x })).outputs[LI.logits];
    const k = logits.shape[1];
    for (let i = 0; i < b.y.size; i++) if (argmax(logits.data as Float32Array, i * k, k) === Number(b.y.data[i])) correct++;
  }
  return correct / Math.max(1, data.size);
}

export function argmax(v: ArrayLike<number>, off: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (v[off + j] > v[off + best]) best = j;
  return best;
}

/** Trains a model (the twin, or the method's) with Adam on the same data, seed and epochs; returns it and its history. */
export async function fitModel(
  model: ModelProto,
  train: Dataset,
  fit: FitSettings,
  extra: { terms?: readonly LossTerm[]; weights?: readonly string[] } = {},
): Promise<{ model: ModelProto; history: readonly EpochRecord[] }> {
  const f = fitDefaults(fit);
  const trainer = await Trainer.create(model, { optimizer: { kind: 'adam', lr: f.lr }, terms: extra.terms, weights: extra.weights });
  try {
    const { history } = await trainer.fit(train, { epochs: f.epochs, batchSize: f.batchSize, seed: f.seed });
    return { model: trainer.exportModel(), history };
  } finally {
    await trainer.dispose();
  }
}

export const loadModel = (m: ModelProto) => Model.load(encodeModel(m));

/** Median Euclidean distance between `pairs` random pairs of training inputs: the scale "close" is measured against. */
export function medianPairDistance(data: Dataset, pairs: number, seed: number): number {
  const r = mulberry32(seed);
  const a = Array.from({ length: pairs }, () => Math.floor(r() * data.size));
  const b = Array.from({ length: pairs }, () => Math.floor(r() * data.size));
  const xa = data.gather(a).x.data as Float32Array;
  const xb = data.gather(b).x.data as Float32Array;
  const per = xa.length / pairs;
  return median(Array.from({ length: pairs }, (_, i) => Math.sqrt(sqDist(xa, i * per, xb, i * per, per))));
}

/** Distance from the mean training image to its nearest training image (two streamed passes). */
async function meanImageDistance(train: Dataset): Promise<number> {
  const per = train.inputShape.reduce((a, b) => a * b, 1);
  const mean = new Float64Array(per);
  for (const b of train.batches(500)) for (let k = 0; k < b.x.size; k++) mean[k % per] += Number(b.x.data[k]) / train.size;
  let best = Infinity;
  for (const b of train.batches(500)) for (let i = 0; i < b.indices.length; i++) best = Math.min(best, sqDist(mean, 0, b.x.data as Float32Array, i * per, per));
  return Math.sqrt(best);
}

export function sqDist(a: ArrayLike<number>, ia: number, b: ArrayLike<number>, ib: number, n: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) s += (a[ia + k] - b[ib + k]) ** 2;
  return s;
}

export function median(v: readonly number[]): number {
  const s = [...v].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

export const SELF_EXPLAINING: Taxonomy = active('examples', 'global', RAUKER_INTRINSIC.selfExplaining);

// ---- training and checking a prototype autoencoder ----

export interface PrototypeAutoencoderOptions extends FitSettings, PrototypeTermWeights {
  /** m (default 15, the paper's MNIST setting). */
  readonly prototypes?: number;
  readonly latent?: number;
  readonly hidden?: readonly number[];
  /** Also project every prototype onto its nearest encoded training example and report the accuracy after (default true). */
  readonly project?: boolean;
  /** Random training pairs whose median distance is the scale of "close" (default 500). */
  readonly pairs?: number;
}

/** A training example nearest to something (a decoded prototype, a prototype in latent space). */
export interface Nearest {
  readonly index: number;
  readonly label: number;
  /** Euclidean distance. */
  readonly distance: number;
}

export interface PrototypeAutoencoderResult {
  readonly method: 'prototype-autoencoder';
  readonly taxonomy: Taxonomy;
  readonly spec: PrototypeAutoencoderSpec;
  /** The trained model (prototypes as learnt). */
  readonly model: ModelProto;
  /** The model with every prototype replaced by its nearest encoded training example (when `project`). */
  readonly projected?: ModelProto;
  /** Learnt prototypes [m, d] and their decodings g(p_j) [m, ...input]. */
  readonly prototypes: Tensor<'float32'>;
  readonly decoded: Tensor<'float32'>;
  /** The last layer W [m, classes]: how much being close to p_j counts for each class. */
  readonly classWeights: Tensor<'float32'>;
  /** Per prototype: the training image nearest its decoding (pixels), and the encoding nearest it (latent). */
  readonly nearestImage: readonly Nearest[];
  readonly nearestEncoding: readonly Nearest[];
  /** Median distance between random training images, the scale nearestImage is judged on. */
  readonly medianPairDistance: number;
  /** Test accuracy of the model, its unregularised twin, and the projected model. */
  readonly accuracy: { readonly model: number; readonly twin: number; readonly projected?: number };
  readonly history: readonly EpochRecord[];
  readonly checks: readonly Check[];
}

/** Trains a Li et al. prototype network and its twin on the same data, then checks what the prototypes claim. */
export async function trainPrototypeAutoencoder(train: Dataset, test: Dataset, options: PrototypeAutoencoderOptions = {}): Promise<PrototypeAutoencoderResult> {
  if (!train.numClasses) throw new Error(`prototype autoencoder: dataset ${train.name} has no class count (numClasses)`);
  if (train.inputDType !== 'float32') throw new Error(`prototype autoencoder: dataset ${train.name} has ${train.inputDType} inputs; it needs float32`);
  const f = fitDefaults(options);
  const spec: PrototypeAutoencoderSpec = { input: train.inputShape, classes: train.numClasses, prototypes: options.prototypes ?? 15, latent: options.latent, hidden: options.hidden, seed: f.seed };
  const { d, hidden } = checkSpec(spec);
  const trained = await fitModel(prototypeAutoencoder(spec), train, f, { terms: prototypeAutoencoderTerms(options) });
  const twin = await fitModel(mlp({ inputs: spec.input, hidden: [...hidden, d], classes: spec.classes, seed: f.seed }), train, f);
  const model = await loadModel(trained.model);
  const accuracy = { model: await accuracyOf(model, test), twin: await accuracyOf(await loadModel(twin.model), test) };
  const P = weightOf(trained.model, LI.prototypes);
  const W = weightOf(trained.model, LI.last);
  const decoded = (await (await loadModel(decoderModel(spec, trained.model))).run({ z: P })).outputs[LI.recon] as Tensor<'float32'>;
  const { nearestImage, nearestEncoding } = await nearestToPrototypes(model, train, P.data, decoded.data);
  const scale = medianPairDistance(train, options.pairs ?? 500, f.seed);
  const m = spec.prototypes;
  const close = nearestImage.filter((n) => n.distance < scale).length;
  const blur = await meanImageDistance(train); // a control: the blurriest "prototype", the mean image
  const sharper = nearestImage.filter((n) => n.distance < blur).length;
  const checks: Check[] = [
    {
      name: 'accuracy vs twin',
      value: accuracy.model - accuracy.twin,
      detail: `test accuracy ${accuracy.model.toFixed(4)} with ${m} prototypes vs ${accuracy.twin.toFixed(4)} for the unregularised twin (MLP [${hidden.join(', ')}, ${d}], same data, seed, ${f.epochs} epochs)`,
    },
    {
      name: 'decoded prototypes near training images',
      value: nearestImage.map((n) => n.distance / scale),
      passed: close === m,
      detail: `${close}/${m} decoded prototypes lie closer to their nearest training image than the median distance ${scale.toFixed(3)} between random training images (R1 keeps prototypes on the data)`,
    },
    {
      name: 'decoded prototypes nearer than the mean image',
      value: sharper / m,
      detail: `${sharper}/${m} decoded prototypes lie closer to their nearest training image than the mean training image does to its own (${blur.toFixed(3)}): a blur near everything would not`,
    },
    await decompositionCheck(model, test.slice(0, Math.min(256, test.size)), P, W),
  ];
  let projected: ModelProto | undefined;
  if (options.project ?? true) {
    const p = await projectOntoEncodings(trained.model, train, nearestEncoding.map((n) => n.index));
    projected = p.model;
    const after = await accuracyOf(await loadModel(projected), test);
    Object.assign(accuracy, { projected: after });
    checks.push(p.check, { name: 'accuracy after projection', value: after - accuracy.model, detail: `test accuracy ${after.toFixed(4)} after projecting the prototypes vs ${accuracy.model.toFixed(4)} before` });
  }
  return { method: 'prototype-autoencoder', taxonomy: SELF_EXPLAINING, spec, model: trained.model, projected, prototypes: P, decoded, classWeights: W, nearestImage, nearestEncoding, medianPairDistance: scale, accuracy, history: trained.history, checks };
}

/** One pass over the training set: the image nearest each decoded prototype and the encoding nearest each prototype. */
async function nearestToPrototypes(model: Model, train: Dataset, P: Float32Array, decoded: Float32Array): Promise<{ nearestImage: Nearest[]; nearestEncoding: Nearest[] }> {
  const per = train.inputShape.reduce((a, b) => a * b, 1);
  const m = decoded.length / per;
  const d = P.length / m;
  const best = (n: number) => Array.from({ length: n }, () => ({ index: -1, label: -1, distance: Infinity }));
  const img = best(m);
  const enc = best(m);
  for (const b of train.batches(500)) {
    const z = (await model.run({ x: b.x }, { capture: [LI.latent] })).captures[LI.latent].data as Float32Array;
    const x = b.x.data as Float32Array;
    for (let i = 0; i < b.indices.length; i++) {
      for (let j = 0; j < m; j++) {
        const di = sqDist(decoded, j * per, x, i * per, per);
        if (di < img[j].distance) img[j] = { index: b.indices[i], label: Number(b.y.data[i]), distance: di };
        const dz = sqDist(P, j * d, z, i * d, d);
        if (dz < enc[j].distance) enc[j] = { index: b.indices[i], label: Number(b.y.data[i]), distance: dz };
      }
    }
  }
  const root = (n: Nearest) => ({ ...n, distance: Math.sqrt(n.distance) });
  return { nearestImage: img.map(root), nearestEncoding: enc.map(root) };
}

/** logits = −d·W with d = ‖f(x) − p_j‖² recomputed on the host from the captured encodings (float64). */
async function decompositionCheck(model: Model, data: Dataset, P: Tensor<'float32'>, W: Tensor<'float32'>): Promise<Check> {
  const [m, d] = P.shape;
  const k = W.shape[1];
  const b = data.gather(Array.from({ length: data.size }, (_, i) => i));
  const r = await model.run({ x: b.x }, { capture: [LI.latent] });
  const z = r.captures[LI.latent].data as Float32Array;
  const logits = r.outputs[LI.logits].data as Float32Array;
  let err = 0;
  let scale = 0;
  for (let i = 0; i < data.size; i++) {
    const dist = Array.from({ length: m }, (_, j) => sqDist(z, i * d, P.data, j * d, d));
    for (let c = 0; c < k; c++) {
      const host = dist.reduce((s, v, j) => s - v * W.data[j * k + c], 0);
      err = Math.max(err, Math.abs(host - logits[i * k + c]));
      scale = Math.max(scale, Math.abs(host));
    }
  }
  return {
    name: 'logits = W·(−distances)',
    value: err,
    passed: err <= 1e-4 * (1 + scale),
    detail: `max |graph logit − Σ_j W_jc·(−‖f(x) − p_j‖²) on the host| over ${data.size} test inputs (logits up to ${scale.toFixed(2)})`,
  };
}

/**
 * Replaces prototype j by the encoding of training example sources[j] and checks the result: the encodings come from
 * one run over exactly those examples, and a second run of the new model over the same batch must give distance 0.
 */
async function projectOntoEncodings(trained: ModelProto, train: Dataset, sources: readonly number[]): Promise<{ model: ModelProto; check: Check }> {
  const b = train.gather(sources);
  const z = (await (await loadModel(trained)).run({ x: b.x }, { capture: [LI.latent] })).captures[LI.latent] as Tensor<'float32'>;
  const model = setWeights(trained, new Map([[LI.prototypes, z]]));
  const again = (await (await loadModel(model)).run({ x: b.x }, { capture: [LI.latent, LI.distances] })).captures;
  const dist = again[LI.distances].data as Float32Array;
  const m = sources.length;
  const own = Array.from({ length: m }, (_, j) => dist[j * m + j]);
  const worst = Math.max(...own, maxAbsDiff(again[LI.latent].data as Float32Array, z.data));
  return {
    model,
    check: {
      name: 'projected prototypes are encodings',
      value: worst,
      passed: worst === 0,
      detail: `after projection, max over ${m} prototypes of ‖f(x_src) − p_j‖² for its source training example (and of any change in the encodings): 0 means each prototype is exactly that example's encoding`,
    },
  };
}
