/**
 * ProtoPNet (Chen, Li, Tao, Barnett, Su, Rudin 2019, "This Looks Like That: Deep Learning for Interpretable Image
 * Recognition"): a CNN backbone and a 1×1 add-on give a feature map z [N, D, h, w]; each of M prototype parts p_j
 * (a D-vector, `perClass` per class) is compared with every position, d_j = min over positions ‖z_hw − p_j‖², and
 * scored by the similarity log((d_j + 1)/(d_j + ε)); logits = similarities · W. Training: the joint stage with cluster
 * (each image near a prototype of its class) and separation (far from the others) costs, W fixed at +1 / −0.5 by class
 * identity; the push (each prototype projected onto its nearest training patch of its class); then the last layer
 * alone, with L1 on the off-class connections.
 *
 * Here the backbone starts from the twin's trained convolutions (the paper starts from a pretrained one) and the
 * prototypes from training patches of their class (seedPrototypes), with a warm-up epoch on the add-on and prototypes.
 *
 * Evidence carried: accuracy against the twin (the same backbone with a linear head, same data, seed, epochs) before
 * and after the push and after the last layer; every prototype exactly a training patch after the push (distance 0);
 * d_j the minimum over positions and the logits W·similarities, both recomputed on the host; and how often a test
 * image's most similar prototype belongs to the predicted class.
 *
 * @example
 * const r = await trainProtoPNet(train, test, { perClass: 2, epochs: 2, seed: 1 });
 * const why = await explainProtoPNet(r, test.gather([0]).x); // top prototypes, similarities, where they fire
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import { cnn } from '../../model/builders/cnn.js';
import { defaultBound, uniform } from '../../model/builders/init.js';
import { checkSizes } from '../../model/builders/mlp.js';
import { int64s, Net } from '../../model/builders/net.js';
import type { EpochRecord, LossTerm } from '../../model/train/index.js';
import type { TermBuilder } from '../../model/train/terms.js';
import { attr, type ModelProto } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import type { MethodInfo, Taxonomy } from '../taxonomy.js';
import type { Regularizer } from './twin.js';
import { accuracyOf, argmax, fitDefaults, fitModel, loadModel, maxAbsDiff, prototypeAutoencoder, prototypeAutoencoderTerms, SELF_EXPLAINING, setWeights, trainPrototypeAutoencoder, weightOf, type FitSettings } from './prototypes.js';

/** Names of the values and weights of a ProtoPNet, for captures and terms. */
export const PPN = {
  features: 'features',
  distanceMap: 'proto_dist_map',
  distances: 'proto_min_dist',
  similarities: 'proto_sim',
  logits: 'logits',
  prototypes: 'prototypes',
  last: 'last.weight',
} as const;

export interface ProtoPNetSpec {
  /** One image's shape [C, H, W]. */
  readonly input: readonly [number, number, number];
  readonly classes: number;
  /** Prototypes per class (the paper: 10); M = classes · perClass. */
  readonly perClass: number;
  /** Output channels of the conv blocks (Conv 3×3 → ReLU → MaxPool 2×2 each; default [16, 32, 32]: a 3×3 map of 22-pixel parts on MNIST). */
  readonly channels?: readonly number[];
  /** D, the prototype depth (the add-on's output channels; default 64). */
  readonly depth?: number;
  /** ε of the similarity log((d + 1)/(d + ε)) (default 1e-4). */
  readonly epsilon?: number;
  /** The add-on's last activation (the paper: sigmoid). */
  readonly activation?: 'sigmoid' | 'relu';
  readonly seed: number;
}

/** The class each prototype belongs to: prototype j is of class ⌊j / perClass⌋. */
export const prototypeClass = (spec: ProtoPNetSpec, j: number) => Math.floor(j / spec.perClass);

export function protoPNet(spec: ProtoPNetSpec): ModelProto {
  const { M, D, channels } = checkSpec(spec);
  const net = new Net(spec.seed);
  let h = 'x';
  let c = spec.input[0];
  channels.forEach((out, i) => {
    const s = `c${i + 1}`;
    const w = net.param(`${s}.weight`, uniform(net.rand, [out, c, 3, 3], defaultBound(c * 9)));
    const b = net.param(`${s}.bias`, uniform(net.rand, [out], defaultBound(c * 9)));
    h = net.op(s, 'Relu', [net.op(s, 'Conv', [h, w, b], [attr('kernel_shape', { ints: [3, 3] }), attr('pads', { ints: [1, 1, 1, 1] })])]);
    h = net.op(s, 'MaxPool', [h], [attr('kernel_shape', { ints: [2, 2] }), attr('strides', { ints: [2, 2] })]);
    c = out;
  });
  // The add-on: 1×1 conv → ReLU → 1×1 conv → Sigmoid, so features (and prototypes) live in [0, 1]^D.
  const conv1x1 = (s: string, x: string, cin: number, act: string, output?: string) => {
    const w = net.param(`${s}.weight`, uniform(net.rand, [D, cin, 1, 1], defaultBound(cin)));
    const b = net.param(`${s}.bias`, uniform(net.rand, [D], defaultBound(cin)));
    return net.op(s, act, [net.op(s, 'Conv', [x, w, b], [attr('kernel_shape', { ints: [1, 1] })])], [], output ? [output] : undefined);
  };
  const z = conv1x1('add2', conv1x1('add1', h, c, 'Relu'), D, spec.activation === 'relu' ? 'Relu' : 'Sigmoid', PPN.features); // [N, D, h, w]
  const p = net.param(PPN.prototypes, Tensor.float32(Array.from({ length: M * D }, net.rand), [M, D]));
  const zr = net.op('protos', 'Reshape', [z, net.constant('protos', int64s([0, 1, D, -1]))]); // [N, 1, D, h·w]
  const pr = net.op('protos', 'Reshape', [p, net.constant('protos', int64s([1, M, D, 1]))]); // [1, M, D, 1]
  const diff = net.op('protos', 'Sub', [zr, pr]); // [N, M, D, h·w]
  const map = net.op('protos', 'ReduceSum', [net.op('protos', 'Mul', [diff, diff]), net.constant('protos', int64s([2]))], [attr('keepdims', { int: 0 })], [PPN.distanceMap]); // [N, M, h·w]
  const dist = net.op('protos', 'ReduceMin', [map], [attr('axes', { ints: [2] }), attr('keepdims', { int: 0 })], [PPN.distances]); // [N, M]
  const eps = net.constant('sim', Tensor.float32([spec.epsilon ?? 1e-4], []));
  const one = net.constant('sim', Tensor.float32([1], []));
  const sim = net.op('sim', 'Sub', [net.op('sim', 'Log', [net.op('sim', 'Add', [dist, one])]), net.op('sim', 'Log', [net.op('sim', 'Add', [dist, eps])])], [], [PPN.similarities]);
  // The last layer, W [M, classes]: +1 to the prototype's own class, −0.5 to the others (the paper's initialisation).
  const W = Float32Array.from({ length: M * spec.classes }, (_, i) => (prototypeClass(spec, Math.floor(i / spec.classes)) === i % spec.classes ? 1 : -0.5));
  net.op('last', 'MatMul', [sim, net.param(PPN.last, new Tensor('float32', W, [M, spec.classes]))], [], [PPN.logits]);
  return net.model({
    name: 'protopnet',
    doc: `ProtoPNet (Chen et al. 2019): ${spec.input.join('×')} → conv [${channels.join(', ')}] → add-on ${D} → ${M} prototypes (${spec.perClass}/class) → ${spec.classes} classes`,
    input: { name: 'x', dtype: 'float32', shape: ['N', ...spec.input] },
    output: { name: PPN.logits, shape: ['N', spec.classes] },
  });
}

function checkSpec(spec: ProtoPNetSpec): { M: number; D: number; channels: readonly number[] } {
  const D = spec.depth ?? 64;
  const channels = spec.channels ?? [16, 32, 32];
  if (spec.input.length !== 3) throw new Error(`protopnet: input must be an image shape [C, H, W], got [${spec.input.join(', ')}]`);
  const [C, H, W] = spec.input;
  checkSizes('protopnet', { 'input C': C, 'input H': H, 'input W': W, classes: spec.classes, perClass: spec.perClass, depth: D }, channels);
  if (Math.min(H, W) >> channels.length < 1) throw new Error(`protopnet: ${channels.length} pooling blocks leave no feature map of a ${H}×${W} image; use fewer channels entries`);
  if (!((spec.epsilon ?? 1e-4) > 0)) throw new Error(`protopnet: epsilon must be > 0, got ${spec.epsilon}`);
  return { M: spec.classes * spec.perClass, D, channels };
}

/** Which prototypes are of which class: [classes, M], 1 where prototype j is of class c. */
function identity(spec: ProtoPNetSpec): Tensor<'float32'> {
  const M = spec.classes * spec.perClass;
  return Tensor.float32(Array.from({ length: spec.classes * M }, (_, i) => (prototypeClass(spec, i % M) === Math.floor(i / M) ? 1 : 0)), [spec.classes, M]);
}

export interface ProtoPNetTermWeights {
  /** λ of the cluster cost (paper: 0.8). */
  readonly cluster?: number;
  /** λ of the separation cost, entered with a minus sign (paper: 0.08). */
  readonly separation?: number;
}

const keep0 = [attr('keepdims', { int: 0 })];
const BIG = 1e4; // added to the distances a minimum must skip: far above any D-dimensional distance in [0, 1]^D

/** The cluster and separation costs of the joint stage (mean over the batch of a masked minimum distance). */
export function protoPNetTerms(spec: ProtoPNetSpec, weights: ProtoPNetTermWeights = {}): LossTerm[] {
  checkSpec(spec);
  const w = { cluster: weights.cluster ?? 0.8, separation: weights.separation ?? 0.08 };
  for (const [k, v] of Object.entries(w)) if (!(v >= 0)) throw new Error(`protopnet terms: weight '${k}' must be ≥ 0, got ${v}`);
  const own = (b: TermBuilder) => {
    if (!b.labels) throw new Error("protopnet terms: the trainer needs the classifier head (labels), not head 'none'");
    const onehot = b.op('OneHot', [b.labels, b.constant(Tensor.int64([spec.classes])), b.constant(Tensor.float32([0, 1]))], [attr('axis', { int: -1 })]); // [N, classes]
    return b.op('MatMul', [onehot, b.constant(identity(spec))]); // [N, M]: 1 where p_j is of x's class
  };
  const maskedMin = (b: TermBuilder, skip: string) => {
    const d = b.op('Add', [b.site(PPN.distances), b.op('Mul', [skip, b.constant(Tensor.float32([BIG], []))])]);
    return b.op('ReduceMean', [b.op('ReduceMin', [d], [attr('axes', { ints: [1] }), ...keep0])], keep0);
  };
  return [
    { name: 'cluster', weight: w.cluster, build: (b) => maskedMin(b, b.op('Sub', [b.constant(Tensor.float32([1], [])), own(b)])) },
    { name: 'separation', weight: -w.separation, build: (b) => maskedMin(b, own(b)) },
  ];
}

/** The last-layer stage's L1 penalty on the connections from prototypes to classes other than their own. */
export function lastLayerL1(spec: ProtoPNetSpec, weight = 1e-4): LossTerm {
  if (!(weight >= 0)) throw new Error(`protopnet last layer: L1 weight must be ≥ 0, got ${weight}`);
  const off = identity(spec); // [classes, M] → its complement, transposed to W's [M, classes]
  const [k, M] = off.shape;
  const mask = Tensor.float32(Array.from({ length: M * k }, (_, i) => 1 - off.data[(i % k) * M + Math.floor(i / k)]), [M, k]);
  return { name: 'l1', weight, build: (b) => b.op('ReduceSum', [b.op('Abs', [b.op('Mul', [PPN.last, b.constant(mask)])])], keep0) };
}

// ---- training: joint stage, push, last layer ----

export interface ProtoPNetOptions extends FitSettings, ProtoPNetTermWeights {
  readonly perClass?: number;
  readonly channels?: readonly number[];
  readonly depth?: number;
  /** Start the backbone from the twin's trained convolutions, as the paper starts from a pretrained one (default true). */
  readonly pretrained?: boolean;
  /** Epochs of the warm-up stage (add-on and prototypes only; default 1). */
  readonly warmEpochs?: number;
  /** Epochs of the last-layer stage after the push (default 1; 0 skips it). */
  readonly lastEpochs?: number;
  /** L1 weight on the off-class connections in that stage (default 1e-4). */
  readonly l1?: number;
  /** Test images whose most similar prototype is compared with the prediction (default 200). */
  readonly explain?: number;
}

/** Where a prototype was pushed to: a training image and a position of its feature map. */
export interface PrototypeSource {
  readonly index: number;
  readonly label: number;
  /** Position in the h×w feature map. */
  readonly row: number;
  readonly col: number;
  /** ‖z − p_j‖ to that patch before the push. */
  readonly distanceBefore: number;
  /** Similarity of the pushed prototype at every position of its source image [h·w] (where it "is" in the image). */
  readonly map: Float32Array;
}

export interface ProtoPNetResult {
  readonly method: 'protopnet';
  readonly taxonomy: Taxonomy;
  readonly spec: ProtoPNetSpec;
  /** The final model (pushed, last layer trained), and the stages before it. */
  readonly model: ModelProto;
  readonly joint: ModelProto;
  readonly pushed: ModelProto;
  /** Feature-map size h × w. */
  readonly mapShape: readonly [number, number];
  readonly sources: readonly PrototypeSource[];
  /** Test accuracy after each stage, and of the unregularised twin. */
  readonly accuracy: { readonly joint: number; readonly pushed: number; readonly final: number; readonly twin: number };
  readonly history: readonly EpochRecord[];
  readonly checks: readonly Check[];
}

/** Trains a ProtoPNet and its twin on the same data (joint → push → last layer) and checks each claim. */
export async function trainProtoPNet(train: Dataset, test: Dataset, options: ProtoPNetOptions = {}): Promise<ProtoPNetResult> {
  if (!train.numClasses) throw new Error(`protopnet: dataset ${train.name} has no class count (numClasses)`);
  if (train.inputShape.length !== 3 || train.inputDType !== 'float32') throw new Error(`protopnet: dataset ${train.name} must hold float32 images [C, H, W], not ${train.inputDType} [${train.inputShape.join(', ')}]`);
  const f = fitDefaults(options);
  const spec: ProtoPNetSpec = { input: train.inputShape as [number, number, number], classes: train.numClasses, perClass: options.perClass ?? 2, channels: options.channels, depth: options.depth, seed: f.seed };
  const { channels } = checkSpec(spec);
  const twin = await fitModel(cnn({ input: spec.input, channels, classes: spec.classes, seed: f.seed }), train, f);
  // The paper starts from a pretrained backbone: here, the twin's convolutions.
  const backbone = channels.flatMap((_, i) => [`c${i + 1}.weight`, `c${i + 1}.bias`]);
  const start = options.pretrained ?? true ? setWeights(protoPNet(spec), new Map(backbone.map((n) => [n, weightOf(twin.model, n)]))) : protoPNet(spec);
  const seeded = await seedPrototypes(start, spec, train, f.seed);
  const names = start.graph!.initializer.map((t) => t.name);
  const terms = protoPNetTerms(spec, options);
  // Warm-up: the add-on and the prototypes only; then the joint stage: everything but the last layer.
  const warmEpochs = options.warmEpochs ?? 1;
  const warm = warmEpochs > 0 ? await fitModel(seeded, train, { ...f, epochs: warmEpochs }, { terms, weights: names.filter((n) => n !== PPN.last && !backbone.includes(n)) }) : { model: seeded, history: [] };
  const joint = await fitModel(warm.model, train, f, { terms, weights: names.filter((n) => n !== PPN.last) });
  const acc = { joint: await accuracyOf(await loadModel(joint.model), test), twin: await accuracyOf(await loadModel(twin.model), test) };
  const push = await pushPrototypes(joint.model, spec, train);
  const pushed = await accuracyOf(await loadModel(push.model), test);
  const lastEpochs = options.lastEpochs ?? 1;
  const last = lastEpochs > 0 ? await fitModel(push.model, train, { ...f, epochs: lastEpochs }, { terms: [lastLayerL1(spec, options.l1)], weights: [PPN.last] }) : { model: push.model, history: [] };
  const accuracy = { ...acc, pushed, final: await accuracyOf(await loadModel(last.model), test) };
  const same = maxAbsDiff(weightOf(last.model, PPN.prototypes).data, weightOf(push.model, PPN.prototypes).data);
  const explained = test.slice(0, Math.min(options.explain ?? 200, test.size));
  const { decomposition, ownClass } = await closedFormChecks(last.model, spec, explained);
  const checks: Check[] = [
    { name: 'accuracy vs twin', value: accuracy.final - accuracy.twin, detail: `test accuracy ${accuracy.final.toFixed(4)} (ProtoPNet, ${spec.classes * spec.perClass} prototypes) vs ${accuracy.twin.toFixed(4)} for the twin (CNN [${channels.join(', ')}] + linear head, same data, seed, ${f.epochs} epochs; ProtoPNet starts from its backbone, warms up ${warmEpochs} and trains ${f.epochs} joint epochs)` },
    push.check,
    { name: 'accuracy after push', value: accuracy.pushed - accuracy.joint, detail: `test accuracy ${accuracy.pushed.toFixed(4)} after projecting the prototypes vs ${accuracy.joint.toFixed(4)} before (the paper reports a small drop); ${accuracy.final.toFixed(4)} after ${lastEpochs} last-layer epoch(s)` },
    { name: 'prototypes kept by the last layer', value: same, passed: same === 0, detail: 'max change of the prototypes during the last-layer stage (only W is trained, so they stay training patches)' },
    ...decomposition,
    ownClass,
  ];
  return { method: 'protopnet', taxonomy: SELF_EXPLAINING, spec, model: last.model, joint: joint.model, pushed: push.model, mapShape: push.mapShape, sources: push.sources, accuracy, history: [...warm.history, ...joint.history, ...last.history], checks };
}

const similarity = (d: number, eps: number) => Math.log((d + 1) / (d + eps));

/**
 * The push: each prototype replaced by the feature vector of its nearest patch among training images of its class.
 * The patches are read from one run over exactly the source images; a second run of the pushed model over the same
 * batch must give distance 0 at each source position.
 */
export async function pushPrototypes(trained: ModelProto, spec: ProtoPNetSpec, train: Dataset): Promise<{ model: ModelProto; sources: PrototypeSource[]; mapShape: [number, number]; check: Check }> {
  const { M, D } = checkSpec(spec);
  const model = await loadModel(trained);
  const best = Array.from({ length: M }, () => ({ index: -1, label: -1, pos: -1, d: Infinity }));
  let hw = 0;
  let mapShape: [number, number] = [0, 0];
  for (const b of train.batches(500)) {
    const { captures } = await model.run({ x: b.x }, { capture: [PPN.distanceMap, PPN.features] });
    const map = captures[PPN.distanceMap].data as Float32Array; // [n, M, h·w]
    mapShape = captures[PPN.features].shape.slice(2) as [number, number];
    hw = mapShape[0] * mapShape[1];
    for (let i = 0; i < b.indices.length; i++) {
      const y = Number(b.y.data[i]);
      for (let j = y * spec.perClass; j < (y + 1) * spec.perClass; j++) {
        for (let q = 0; q < hw; q++) {
          const d = map[(i * M + j) * hw + q];
          if (d < best[j].d) best[j] = { index: b.indices[i], label: y, pos: q, d };
        }
      }
    }
  }
  const missing = best.findIndex((s) => s.index < 0);
  if (missing >= 0) throw new Error(`protopnet push: no training image of class ${prototypeClass(spec, missing)} for prototype ${missing}`);
  const batch = train.gather(best.map((s) => s.index));
  const z = (await model.run({ x: batch.x }, { capture: [PPN.features] })).captures[PPN.features].data as Float32Array; // [M, D, h·w]
  const P = Tensor.float32(Array.from({ length: M * D }, (_, i) => z[(Math.floor(i / D) * D + (i % D)) * hw + best[Math.floor(i / D)].pos]), [M, D]);
  const pushed = setWeights(trained, new Map([[PPN.prototypes, P]]));
  const again = (await (await loadModel(pushed)).run({ x: batch.x }, { capture: [PPN.features, PPN.distanceMap, PPN.distances] })).captures;
  const map = again[PPN.distanceMap].data as Float32Array;
  const dist = again[PPN.distances].data as Float32Array;
  const eps = spec.epsilon ?? 1e-4;
  const sources = best.map((s, j) => ({
    index: s.index,
    label: s.label,
    row: Math.floor(s.pos / mapShape[1]),
    col: s.pos % mapShape[1],
    distanceBefore: Math.sqrt(s.d),
    map: Float32Array.from({ length: hw }, (_, q) => similarity(map[(j * M + j) * hw + q], eps)),
  }));
  const worst = Math.max(...best.map((s, j) => Math.max(map[(j * M + j) * hw + s.pos], dist[j * M + j])), maxAbsDiff(again[PPN.features].data as Float32Array, z));
  const check: Check = {
    name: 'pushed prototypes are training patches',
    value: worst,
    passed: worst === 0,
    detail: `after the push, max over ${M} prototypes of the squared distance to their source patch and of their minimum distance over the source image (0: each prototype is exactly that patch); mean distance moved ${(sources.reduce((a, s) => a + s.distanceBefore, 0) / M).toFixed(4)}`,
  };
  return { model: pushed, sources, mapShape, check };
}

/** The host recomputation of d_j (min over positions) and of the logits, and how often the most similar prototype is of the predicted class. */
async function closedFormChecks(proto: ModelProto, spec: ProtoPNetSpec, data: Dataset): Promise<{ decomposition: Check[]; ownClass: Check }> {
  const { M, D } = checkSpec(spec);
  const model = await loadModel(proto);
  const P = weightOf(proto, PPN.prototypes).data;
  const W = weightOf(proto, PPN.last).data;
  const k = spec.classes;
  const eps = spec.epsilon ?? 1e-4;
  let [dErr, lErr, scale, own] = [0, 0, 0, 0];
  for (const b of data.batches(100)) {
    const r = await model.run({ x: b.x }, { capture: [PPN.features, PPN.distances] });
    const z = r.captures[PPN.features].data as Float32Array;
    const dist = r.captures[PPN.distances].data as Float32Array;
    const logits = r.outputs[PPN.logits].data as Float32Array;
    const hw = r.captures[PPN.features].shape.slice(2).reduce((a, v) => a * v, 1);
    for (let i = 0; i < b.indices.length; i++) {
      const host = Array.from({ length: M }, (_, j) => {
        let m = Infinity;
        for (let q = 0; q < hw; q++) {
          let s = 0;
          for (let c = 0; c < D; c++) s += (z[(i * D + c) * hw + q] - P[j * D + c]) ** 2;
          m = Math.min(m, s);
        }
        return m;
      });
      host.forEach((v, j) => (dErr = Math.max(dErr, Math.abs(v - dist[i * M + j]))));
      const sims = Array.from(dist.subarray(i * M, (i + 1) * M), (d) => similarity(d, eps));
      for (let c = 0; c < k; c++) {
        const v = sims.reduce((s, x, j) => s + x * W[j * k + c], 0);
        lErr = Math.max(lErr, Math.abs(v - logits[i * k + c]));
        scale = Math.max(scale, Math.abs(v));
      }
      if (prototypeClass(spec, argmax(sims, 0, M)) === argmax(logits, i * k, k)) own++;
    }
  }
  return {
    decomposition: [
      { name: 'distance = min over positions', value: dErr, passed: dErr <= 1e-4, detail: `max |graph d_j − min over positions of ‖z_hw − p_j‖² on the host| over ${data.size} test images` },
      { name: 'logits = W·similarities', value: lErr, passed: lErr <= 1e-4 * (1 + scale), detail: `max |graph logit − Σ_j W_jc·log((d_j + 1)/(d_j + ε))| on the host over ${data.size} test images (logits up to ${scale.toFixed(2)})` },
    ],
    ownClass: { name: 'most similar prototype of the predicted class', value: own / Math.max(1, data.size), detail: `${own}/${data.size} test images: the prototype they look most like belongs to the class predicted` },
  };
}

/**
 * Data-dependent start: prototype j takes the feature vector of a random training image of its class, at the position
 * farthest from that image's mean feature (a stroke, not the background). Without it, on images with a uniform
 * background every prototype's nearest patch is background, the same for all images, and training barely moves.
 */
export async function seedPrototypes(model: ModelProto, spec: ProtoPNetSpec, train: Dataset, seed: number): Promise<ModelProto> {
  if (!train.labels) throw new Error(`protopnet: dataset ${train.name} has no labels to seed prototypes by class`);
  const P = await seededPrototypes(model, spec, train.labels, (ix) => train.gather(ix).x, seed, 'error');
  return setWeights(model, new Map([[PPN.prototypes, P]]));
}

/** The seeded prototypes [M, D] from a pool of labelled images; with 'keep', a class absent from the pool keeps its prototypes. */
async function seededPrototypes(model: ModelProto, spec: ProtoPNetSpec, labels: ArrayLike<number>, gather: (ix: number[]) => Tensor, seed: number, missing: 'error' | 'keep'): Promise<Tensor<'float32'>> {
  const { M, D } = checkSpec(spec);
  const byClass = Array.from({ length: spec.classes }, () => [] as number[]);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]]?.push(i);
  const r = mulberry32(seed);
  const pick = Array.from({ length: M }, (_, j) => {
    const pool = byClass[prototypeClass(spec, j)];
    if (pool.length === 0 && missing === 'error') throw new Error(`protopnet: no training image of class ${prototypeClass(spec, j)} to seed prototype ${j}`);
    return pool.length ? pool[Math.floor(r() * pool.length)] : -1;
  });
  const P = weightOf(model, PPN.prototypes).data.slice();
  const z = (await (await loadModel(model)).run({ x: gather(pick.map((i) => Math.max(0, i))) }, { capture: [PPN.features] })).captures[PPN.features]; // [M, D, h, w]
  const hw = z.shape[2] * z.shape[3];
  const f = z.data as Float32Array;
  for (let j = 0; j < M; j++) {
    if (pick[j] < 0) continue;
    const mean = Array.from({ length: D }, (_, c) => f.subarray((j * D + c) * hw, (j * D + c + 1) * hw).reduce((a, v) => a + v, 0) / hw);
    let [best, at] = [-1, 0];
    for (let q = 0; q < hw; q++) {
      const s = mean.reduce((a, m, c) => a + (f[(j * D + c) * hw + q] - m) ** 2, 0);
      if (s > best) [best, at] = [s, q];
    }
    for (let c = 0; c < D; c++) P[j * D + c] = f[(j * D + c) * hw + at];
  }
  return new Tensor('float32', P, [M, D]);
}

/** Rows ix of a batch tensor [n, ...] as a new tensor. */
function rows(x: Tensor, ix: readonly number[]): Tensor<'float32'> {
  const per = x.size / x.shape[0];
  const out = new Float32Array(ix.length * per);
  ix.forEach((i, k) => out.set((x.data as Float32Array).subarray(i * per, (i + 1) * per), k * per));
  return new Tensor('float32', out, [ix.length, ...x.shape.slice(1)]);
}

// ---- the registry and `glassbox train --prototypes N` ----

export const PROTOTYPE_METHODS = {
  'prototype-autoencoder': {
    info: { title: 'Prototype network (autoencoder, decoded prototypes)', reference: 'Li, Liu, Chen, Rudin 2018, Deep Learning for Case-Based Reasoning through Prototypes', taxonomy: SELF_EXPLAINING, stochastic: true },
    run: trainPrototypeAutoencoder,
  },
  protopnet: {
    info: { title: 'ProtoPNet (prototype parts, this looks like that)', reference: 'Chen, Li, Tao, Barnett, Su, Rudin 2019, This Looks Like That', taxonomy: SELF_EXPLAINING, stochastic: true },
    run: trainProtoPNet,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;

export interface PrototypeSettings {
  /** One example's shape (the recipe's input). */
  readonly inputShape: readonly number[];
  readonly classes: number;
  /** N, prototypes in all (ProtoPNet: a multiple of classes, spread evenly). */
  readonly prototypes: number;
  readonly seed?: number;
  /** Default: 'protopnet' for images [C, H, W] of at least 8×8, 'autoencoder' otherwise. */
  readonly kind?: 'protopnet' | 'autoencoder';
}

/** What `glassbox train --prototypes N` trains: a Regularizer (model, terms, weights) and, for ProtoPNet, its stages around it. */
export interface PrototypeTraining extends Regularizer {
  readonly kind: 'protopnet' | 'autoencoder';
  readonly model: ModelProto;
  /** ProtoPNet: seed the prototypes from training patches of the whole set before fitting (the transform seeds from the first batch). */
  readonly prepare?: (model: ModelProto, train: Dataset) => Promise<ModelProto>;
  /** ProtoPNet: the push after fitting (the trained model → prototypes projected onto training patches, with its check). */
  readonly push?: (trained: ModelProto, train: Dataset) => Promise<{ model: ModelProto; check: Check }>;
}

/** The prototype model and its loss terms from a recipe's settings. */
export function prototypeTraining(s: PrototypeSettings): PrototypeTraining {
  const seed = s.seed ?? 1;
  const image = s.inputShape.length === 3 && Math.min(s.inputShape[1], s.inputShape[2]) >= 8;
  const kind = s.kind ?? (image ? 'protopnet' : 'autoencoder');
  if (!Number.isInteger(s.prototypes) || s.prototypes < 1) throw new Error(`--prototypes: N must be a positive integer, got ${s.prototypes}`);
  if (kind === 'autoencoder') {
    const model = prototypeAutoencoder({ input: s.inputShape, classes: s.classes, prototypes: s.prototypes, seed });
    return { kind, model, terms: prototypeAutoencoderTerms() };
  }
  if (!image) throw new Error(`--prototypes: ProtoPNet needs images [C, H, W] of at least 8×8, got [${s.inputShape.join(', ')}]`);
  if (s.prototypes % s.classes !== 0) throw new Error(`--prototypes: ProtoPNet spreads N evenly over the ${s.classes} classes; ${s.prototypes} is not a multiple of ${s.classes}`);
  const spec: ProtoPNetSpec = { input: s.inputShape as [number, number, number], classes: s.classes, perClass: s.prototypes / s.classes, seed };
  const model = protoPNet(spec);
  return {
    kind,
    model,
    terms: protoPNetTerms(spec),
    weights: model.graph!.initializer.map((t) => t.name).filter((n) => n !== PPN.last),
    // Before the first step: seed the prototypes from the first batch's images of their class (seedPrototypes).
    transform: async (batch, trainer) => {
      if (trainer.optimizer.steps > 0) return batch;
      const P = await seededPrototypes(trainer.exportModel(), spec, Array.from(batch.y.data as BigInt64Array, Number), (ix) => rows(batch.x, ix), seed, 'keep');
      trainer.weights.get(PPN.prototypes)!.data.set(P.data);
      return batch;
    },
    prepare: (m, train) => seedPrototypes(m, spec, train, seed),
    push: async (trained, train) => {
      const p = await pushPrototypes(trained, spec, train);
      return { model: p.model, check: p.check };
    },
  };
}

/**
 * `glassbox train --prototypes N`: N prototypes per class. Images [C, H, W] get a ProtoPNet (the recipe's model is
 * replaced; its input shape and classes are the dataset's), other inputs Li et al.'s prototype autoencoder with
 * N·classes prototypes. After fitting, call `push` (ProtoPNet) to project the prototypes onto training patches.
 */
export function prototypeRegularizer(_recipeModel: ModelProto, train: Dataset, options: { prototypes: number; seed?: number }): PrototypeTraining {
  if (!train.numClasses) throw new Error(`--prototypes: dataset ${train.name} has no class count`);
  if (!Number.isInteger(options.prototypes) || options.prototypes < 1) throw new Error(`--prototypes: N must be a positive integer, got ${options.prototypes}`);
  return prototypeTraining({ inputShape: train.inputShape, classes: train.numClasses, prototypes: options.prototypes * train.numClasses, seed: options.seed });
}
