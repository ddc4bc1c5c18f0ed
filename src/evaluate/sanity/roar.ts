/**
 * RemOve And Retrain (ROAR; Hooker, Erhan, Kindermans, Kim 2019, "A Benchmark for Interpretability Methods in Deep
 * Neural Networks", NeurIPS). Removing pixels and re-evaluating the same model confounds "the pixels mattered" with
 * "the model never saw such inputs"; ROAR retrains instead. For each ranking and each fraction t: in every training
 * and test image replace the top-ranked t of the pixels by the per-channel mean of the training set, train a fresh
 * model (same architecture, same initial weights, same shuffling seed) on the modified training set, and report its
 * accuracy on the modified test set. A ranking that finds the informative pixels makes accuracy fall faster than a
 * random ranking does.
 *
 * Here: rankings come from attributions of a model trained on the unmodified data (registry methods, explaining each
 * image's label), from a random ranking (always included), or from a given function. A pixel is a spatial position
 * of a [C, H, W] image (all channels replaced together, each by its channel mean; importance Σ_c |a_c|, or Σ_c a_c
 * with abs: false); a rank-1 input is one channel of features. Hooker et al. retrain 5 times per point; this runs
 * once per point (the seeds are fixed), and the subset size, epochs and fractions are options, since on MNIST each
 * point is a full training run. Verdict per ranking: passes when its mean accuracy over the fractions is below the
 * random ranking's.
 *
 * @example
 * const r = await roar({ architecture: mlp({ inputs: [1, 28, 28], hidden: [32], classes: 10, seed: 1 }), train, test,
 *   rankings: { 'gradient-x-input': 'gradient-x-input' }, trainSize: 2000, testSize: 500, epochs: 3 });
 * r.accuracy['gradient-x-input']; // one test accuracy per fraction, against r.accuracy.random
 */
import { dataset, type Dataset } from '../../data/datasets/dataset.js';
import { mixSeed, mulberry32 } from '../../data/datasets/random.js';
import type { Check } from '../../methods/attribution/explanation.js';
import type { ExplainOptions } from '../../methods/attribution/method.js';
import type { Model } from '../../model/model.js';
import type { ModelProto } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { resolveMethod, type MethodName } from './randomization.js';
import { trainFresh, type RetrainOptions } from './retrain.js';

/** Importance of every value of a batch of images x [B, ...], given their labels and the model trained on clean data. */
export type Ranker = (x: Tensor<'float32'>, labels: Int32Array, model: Model) => Promise<Float32Array> | Float32Array;

/** A registry method, 'random', or a function. */
export type RankSource = MethodName | 'random' | Ranker;

export interface RoarProgress {
  readonly stage: 'train' | 'rank' | 'retrain';
  readonly ranking?: string;
  readonly fraction?: number;
  /** Training runs and ranking passes done, of all. */
  readonly done: number;
  readonly total: number;
}

export interface RoarOptions extends RetrainOptions {
  /** The untrained architecture (a builder's ModelProto); every retraining starts from its weights. */
  readonly architecture: ModelProto;
  readonly train: Dataset<'float32'>;
  readonly test: Dataset<'float32'>;
  /** Rankings to evaluate by name; 'random' is added when missing. */
  readonly rankings: Readonly<Record<string, RankSource>>;
  /** Fractions of pixels removed (default 0.1, 0.3, 0.5, 0.7, 0.9). */
  readonly fractions?: readonly number[];
  /** Use the first n training / test examples (default: all). */
  readonly trainSize?: number;
  readonly testSize?: number;
  /** Options of the registry methods (steps, samples, baseline…); the target is each image's label. */
  readonly explain?: ExplainOptions;
  /** Rank by |attributions| (default true). */
  readonly abs?: boolean;
  /** Seed of the random ranking (default 0). */
  readonly randomSeed?: number;
  /** Images per attribution call (default 128). */
  readonly rankBatch?: number;
  readonly onProgress?: (p: RoarProgress) => void;
}

export interface RoarResult {
  readonly fractions: readonly number[];
  /** Test accuracy of the model trained on the unmodified data (fraction 0). */
  readonly baseAccuracy: number;
  /** Test accuracy of the retrained model per ranking, one per fraction. */
  readonly accuracy: Readonly<Record<string, readonly number[]>>;
  readonly trainAccuracy: Readonly<Record<string, readonly number[]>>;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
}

/** Image layout of one example: channels × pixels. */
function layoutOf(shape: readonly number[]): { channels: number; pixels: number } {
  if (shape.length === 1) return { channels: 1, pixels: shape[0] };
  if (shape.length === 2) return { channels: 1, pixels: shape[0] * shape[1] };
  if (shape.length === 3) return { channels: shape[0], pixels: shape[1] * shape[2] };
  throw new Error(`roar: inputs must be [F], [H, W] or [C, H, W] per example, got [${shape.join(', ')}]`);
}

function channelMeans(data: Dataset<'float32'>, channels: number, pixels: number): Float64Array {
  const sums = new Float64Array(channels);
  for (const { x } of data.batches(256)) {
    const b = x.shape[0];
    for (let i = 0; i < b; i++) for (let c = 0; c < channels; c++) for (let p = 0; p < pixels; p++) sums[c] += x.data[(i * channels + c) * pixels + p];
  }
  return sums.map((s) => s / (data.size * pixels));
}

/** Pixel order of every example, most important first ([N × P]; ties by position). */
async function rankPixels(data: Dataset<'float32'>, source: RankSource, model: Model, o: { abs: boolean; seed: number; batch: number; explain: ExplainOptions }): Promise<Int32Array> {
  const { channels, pixels } = layoutOf(data.inputShape);
  const order = new Int32Array(data.size * pixels);
  const rand = mulberry32(mixSeed(o.seed, data.size));
  const fn: Ranker =
    source === 'random' ? (x) => Float32Array.from({ length: x.size }, () => rand())
    : typeof source === 'function' ? source
    : async (x, labels) => {
      const entry = resolveMethod(source).entry;
      const input = model.inputs[0].name;
      return (await entry.explain(model, { [input]: x }, { ...o.explain, target: Array.from(labels) })).attributions.data;
    };
  let start = 0;
  for (const { x, y } of data.batches(o.batch)) {
    const b = x.shape[0];
    const imp = await fn(x, Int32Array.from(y.data as BigInt64Array, Number), model);
    if (imp.length !== x.size) throw new Error(`roar: a ranking returned ${imp.length} importances for a batch of ${x.size} values`);
    const score = new Float64Array(pixels);
    for (let i = 0; i < b; i++) {
      score.fill(0);
      for (let c = 0; c < channels; c++) for (let p = 0; p < pixels; p++) {
        const v = imp[(i * channels + c) * pixels + p];
        score[p] += o.abs ? Math.abs(v) : v;
      }
      const idx = Array.from({ length: pixels }, (_, p) => p).sort((p, q) => score[q] - score[p] || p - q);
      order.set(idx, (start + i) * pixels);
    }
    start += b;
  }
  return order;
}

/** The dataset with each example's top `k` pixels (by `order`) set to the channel means; computed per batch. */
function removed(data: Dataset<'float32'>, order: Int32Array, k: number, means: Float64Array): Dataset<'float32'> {
  const { channels, pixels } = layoutOf(data.inputShape);
  return dataset({
    name: `${data.name}[top ${k} removed]`,
    size: data.size,
    inputShape: data.inputShape,
    inputDType: 'float32',
    numClasses: data.numClasses,
    classNames: data.classNames,
    labels: data.labels,
    gather: (ix) => {
      const { x, y } = data.gather(ix);
      const out = x.data.slice(); // [B, C, P]
      for (let i = 0; i < ix.length; i++) {
        for (let r = 0; r < k; r++) {
          const p = order[ix[i] * pixels + r];
          for (let c = 0; c < channels; c++) out[(i * channels + c) * pixels + p] = means[c];
        }
      }
      return { x: new Tensor('float32', out, x.shape), y };
    },
  });
}

function checkOptions(o: RoarOptions, fractions: readonly number[]): void {
  if (fractions.length === 0) throw new Error('roar: give at least one fraction');
  for (const f of fractions) if (!(f > 0 && f < 1)) throw new Error(`roar: fractions must lie in (0, 1), got ${f}`);
  for (const [k, n] of [['trainSize', o.trainSize], ['testSize', o.testSize], ['rankBatch', o.rankBatch]] as const) {
    if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new Error(`roar: ${k} must be a positive integer, got ${n}`);
  }
  if (o.train.inputShape.join() !== o.test.inputShape.join()) {
    throw new Error(`roar: train [${o.train.inputShape.join(', ')}] and test [${o.test.inputShape.join(', ')}] inputs differ in shape`);
  }
  for (const [name, s] of Object.entries(o.rankings)) {
    if (typeof s === 'string' && s !== 'random') resolveMethod(s);
    else if (typeof s !== 'string' && typeof s !== 'function') throw new Error(`roar: ranking '${name}' must be a method name, 'random' or a function`);
  }
}

export async function roar(options: RoarOptions): Promise<RoarResult> {
  const fractions = [...(options.fractions ?? [0.1, 0.3, 0.5, 0.7, 0.9])];
  checkOptions(options, fractions);
  const { signal, onProgress } = options;
  const train = options.trainSize ? options.train.slice(0, options.trainSize) : options.train;
  const test = options.testSize ? options.test.slice(0, options.testSize) : options.test;
  const rankings: Record<string, RankSource> = { ...options.rankings };
  if (!Object.values(rankings).includes('random')) rankings.random = 'random';
  const names = Object.keys(rankings);
  const randomName = names.find((n) => rankings[n] === 'random')!;
  const total = 1 + names.length + names.length * fractions.length;
  let done = 0;
  const report = (p: Omit<RoarProgress, 'done' | 'total'>) => onProgress?.({ ...p, done: ++done, total });

  const { channels, pixels } = layoutOf(train.inputShape);
  const means = channelMeans(train, channels, pixels);
  const base = await trainFresh(options.architecture, train, options, test);
  report({ stage: 'train' });
  const orders = new Map<string, { train: Int32Array; test: Int32Array }>();
  try {
    const o = { abs: options.abs ?? true, seed: options.randomSeed ?? 0, batch: options.rankBatch ?? 128, explain: { ...options.explain, signal } };
    for (const name of names) {
      signal?.throwIfAborted();
      orders.set(name, { train: await rankPixels(train, rankings[name], base.model, o), test: await rankPixels(test, rankings[name], base.model, { ...o, seed: o.seed + 1 }) });
      report({ stage: 'rank', ranking: name });
    }
  } finally {
    await base.model.dispose();
  }
  const accuracy: Record<string, number[]> = {};
  const trainAccuracy: Record<string, number[]> = {};
  for (const name of names) {
    accuracy[name] = [];
    trainAccuracy[name] = [];
    for (const f of fractions) {
      signal?.throwIfAborted();
      const k = Math.round(f * pixels);
      const { train: tr, test: te } = orders.get(name)!;
      const run = await trainFresh(options.architecture, removed(train, tr, k, means), options, removed(test, te, k, means));
      await run.model.dispose();
      accuracy[name].push(run.testAccuracy!);
      trainAccuracy[name].push(run.trainAccuracy);
      report({ stage: 'retrain', ranking: name, fraction: f });
    }
  }
  const avg = (v: readonly number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  const chance = accuracy[randomName];
  const checks: Check[] = names.filter((n) => rankings[n] !== 'random').map((n) => ({
    name: `roar: ${n}`,
    value: accuracy[n],
    passed: avg(accuracy[n]) < avg(chance),
    detail: `mean retrained test accuracy over fractions ${fractions.join(', ')}: ${avg(accuracy[n]).toFixed(3)} vs random ranking ${avg(chance).toFixed(3)} (base ${base.testAccuracy!.toFixed(3)}); passes when lower`,
  }));
  return {
    fractions,
    baseAccuracy: base.testAccuracy!,
    accuracy,
    trainAccuracy,
    checks,
    params: { trainSize: train.size, testSize: test.size, epochs: options.epochs ?? 5, batchSize: options.batchSize ?? 32, abs: options.abs ?? true, replacement: Array.from(means) },
  };
}
