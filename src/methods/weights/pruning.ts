/**
 * Pruning curves: how many weights a trained classifier can lose before its accuracy drops (Räuker et al. 2023,
 * II "frivolous weights"). Weights are ranked by a saliency criterion and the lowest-ranked fraction is set to zero,
 * for each sparsity in a list; accuracy and loss are measured at each.
 *
 * - magnitude: |w| (Han et al. 2015, "Learning both Weights and Connections").
 * - gradient: first-order Taylor |w · ∂L/∂w| with L the mean cross-entropy over a data sample (Molchanov et al. 2017,
 *   "Pruning Convolutional Neural Networks for Resource Efficient Inference"; SNIP, Lee et al. 2019).
 * - random: a seeded uniform ranking, the baseline every criterion must beat.
 *
 * The pruned models are evaluated in one session whose weights are graph inputs (promoted initializers), so the
 * ONNX file is never rewritten per sparsity.
 *
 * @example
 * const r = await pruningCurve(model, test.slice(0, 2000), { criterion: 'magnitude', scope: 'global' });
 * r.frivolous; // e.g. 0.8: 80% of the weights can go with at most 1 point of accuracy lost
 */
import { crossEntropySeed } from '../../util/softmax.js';
import type { Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import { promoteInitializers } from '../../model/train/promote.js';
import { tensorFromProto } from '../../onnx/tensor-proto.js';
import type { RuntimeSession } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';
import { unknownNameError } from '../../util/nearest.js';
import type { Check } from '../attribution/explanation.js';
import { passiveHidden, RAUKER, type Taxonomy } from '../taxonomy.js';

export type PruningCriterion = 'magnitude' | 'gradient' | 'random';

export interface PruningOptions {
  /** Initializers to prune (default: every float32 initializer of rank ≥ 2: weight matrices and kernels, not biases). */
  readonly weights?: readonly string[];
  /** Default 'magnitude'. */
  readonly criterion?: PruningCriterion;
  /** Rank over all pruned weights at once ('global', default) or prune the same fraction of each weight ('layer'). */
  readonly scope?: 'global' | 'layer';
  /** Fractions of weights set to zero, each in [0, 1] (default 0, 0.1, …, 0.9, 0.95, 0.99). */
  readonly sparsities?: readonly number[];
  readonly batchSize?: number;
  /** Accuracy (a fraction) the pruned model may lose and still count as the dense one (default 0.01: one point). */
  readonly tolerance?: number;
  /** Examples of `data` whose gradient the Taylor criterion uses (default min(size, 1000)). */
  readonly samples?: number;
  /** Also prune at random with this seed, as the baseline (default 0; null: no baseline). */
  readonly randomSeed?: number | null;
}

export interface CurvePoint {
  readonly sparsity: number;
  /** Weights set to zero. */
  readonly pruned: number;
  readonly accuracy: number;
  /** Mean cross-entropy. */
  readonly loss: number;
}

export interface PruningCurve {
  readonly method: 'pruning-curve';
  readonly taxonomy: Taxonomy;
  readonly criterion: PruningCriterion;
  readonly scope: 'global' | 'layer';
  readonly weights: readonly { readonly name: string; readonly size: number }[];
  readonly dense: { readonly accuracy: number; readonly loss: number };
  readonly curve: readonly CurvePoint[];
  /** The same sparsities pruned at random (null when no baseline was asked for). */
  readonly random: readonly CurvePoint[] | null;
  /** The largest sparsity up to which every point of the curve stays within `tolerance` of the dense accuracy. */
  readonly frivolous: number;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

const DEFAULT_SPARSITIES = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99];

/** Float32 initializers of rank ≥ 2 (matrices and kernels; biases and norms left out). */
export function defaultWeightNames(model: Model): string[] {
  return [...model.graph.initializers.values()].filter((t) => t.dataType === 1 && t.dims.length >= 2).map((t) => t.name);
}

/** The named float32 initializers with their values; an unknown or duplicated name is an error naming it. */
export function resolveWeights(model: Model, names: readonly string[] | undefined, where: string): Map<string, Float32Array> {
  const list = names ?? defaultWeightNames(model);
  if (list.length === 0) throw new Error(`${where}: no weights to work on (the model has no float32 initializer of rank ≥ 2; pass weights)`);
  const out = new Map<string, Float32Array>();
  for (const name of list) {
    const t = model.graph.initializers.get(name);
    if (!t) throw unknownNameError(`${where}: weight`, name, model.graph.initializers.keys());
    if (out.has(name)) throw new Error(`${where}: weight '${name}' is listed twice`);
    const value = tensorFromProto(t);
    if (value.dtype !== 'float32') throw new Error(`${where}: weight '${name}' is ${value.dtype}; only float32 weights can be used`);
    out.set(name, (value.data as Float32Array).slice());
  }
  return out;
}

/** The dataset's examples in batches, checked against the model's one input. */
export function inputName(model: Model, where: string): string {
  if (model.inputs.length !== 1) throw new Error(`${where}: the model must read one input, it reads ${model.inputs.map((i) => i.name).join(', ')}`);
  return model.inputs[0].name;
}

/** Mean cross-entropy and correct argmax count of logits [B, C] against labels [B] (float64 on the host). */
export function crossEntropy(logits: Tensor, labels: Tensor): { loss: number; correct: number } {
  const [b, c] = logits.shape;
  if (logits.rank !== 2 || b !== labels.size) throw new Error(`cross-entropy: logits must be [${labels.size}, classes], got [${logits.shape.join(', ')}]`);
  let loss = 0;
  let correct = 0;
  const d = logits.data as Float32Array;
  for (let i = 0; i < b; i++) {
    const y = labels.at(i);
    if (!(y >= 0 && y < c)) throw new Error(`cross-entropy: label ${y} of row ${i} is outside the ${c} classes`);
    let max = -Infinity;
    let arg = 0;
    for (let k = 0; k < c; k++) if (d[i * c + k] > max) [max, arg] = [d[i * c + k], k];
    let z = 0;
    for (let k = 0; k < c; k++) z += Math.exp(d[i * c + k] - max);
    loss += max + Math.log(z) - d[i * c + y];
    if (arg === y) correct++;
  }
  return { loss, correct };
}


/**
 * Evaluates a classifier with replacement weights, in one session whose weights are graph inputs (the model's
 * initializers promoted), so any number of weight settings run without rewriting the graph.
 */
export class WeightEvaluator {
  private constructor(
    private readonly session: RuntimeSession,
    private readonly input: string,
    private readonly output: string,
    readonly names: readonly string[],
  ) {}

  static async create(model: Model, names: readonly string[], where: string): Promise<WeightEvaluator> {
    const input = inputName(model, where);
    const bytes = promoteInitializers(model.graph, names).encode();
    return new WeightEvaluator(await model.runtime.createSession(bytes), input, model.outputs[0].name, names);
  }

  /** Mean loss and accuracy over `data` with these weight values (every name given, each of its original size). */
  async evaluate(data: Dataset, weights: ReadonlyMap<string, Float32Array>, shapes: ReadonlyMap<string, readonly number[]>, batchSize: number): Promise<{ accuracy: number; loss: number }> {
    const feeds: Record<string, Tensor> = {};
    for (const n of this.names) feeds[n] = new Tensor('float32', weights.get(n)!, shapes.get(n)!);
    let loss = 0;
    let correct = 0;
    for (const b of data.batches(batchSize)) {
      const out = await this.session.run({ ...feeds, [this.input]: b.x }, [this.output]);
      const r = crossEntropy(out[this.output], b.y);
      loss += r.loss;
      correct += r.correct;
    }
    const n = Math.max(1, data.size);
    return { accuracy: correct / n, loss: loss / n };
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Shapes of the named initializers. */
export function weightShapes(model: Model, names: Iterable<string>): Map<string, number[]> {
  return new Map([...names].map((n) => [n, model.graph.initializers.get(n)!.dims.map(Number)]));
}

/**
 * First-order Taylor saliency |w · ∂L/∂w| of every weight, L the mean cross-entropy over the first `samples` examples
 * (the seed ∂L/∂logits = (softmax − onehot)/n is computed on the host, then one backward per batch).
 */
export async function taylorScores(model: Model, data: Dataset, options: { weights?: readonly string[]; samples?: number; batchSize?: number } = {}): Promise<Map<string, Float64Array>> {
  const weights = resolveWeights(model, options.weights, 'taylorScores');
  const input = inputName(model, 'taylorScores');
  const n = Math.min(data.size, options.samples ?? 1000);
  if (n < 1) throw new Error('taylorScores: the data sample is empty');
  const names = [...weights.keys()];
  const acc = new Map(names.map((w) => [w, new Float64Array(weights.get(w)!.length)]));
  for (const b of data.slice(0, n).batches(options.batchSize ?? 256)) {
    const { outputs } = await model.run({ [input]: b.x });
    const seed = crossEntropySeed(outputs[model.outputs[0].name], b.y, 1 / n);
    const { grads } = await model.grad({ [input]: b.x }, { wrt: names, seed });
    for (const w of names) {
      const g = grads[w].data as Float32Array;
      const a = acc.get(w)!;
      for (let i = 0; i < a.length; i++) a[i] += g[i];
    }
  }
  for (const [w, a] of acc) {
    const v = weights.get(w)!;
    for (let i = 0; i < a.length; i++) a[i] = Math.abs(v[i] * a[i]);
  }
  return acc;
}

/** Indices 0..n-1 ordered by ascending score (ties: lower index first), the order in which weights are pruned. */
function pruneOrder(scores: Float64Array): Int32Array {
  const order = Int32Array.from({ length: scores.length }, (_, i) => i);
  return order.sort((a, b) => scores[a] - scores[b] || a - b);
}

/**
 * The weights with the k = round(s·n) lowest-scored set to zero, over all weights at once (global) or within each
 * weight (layer). Exported for tests and for other methods that prune.
 */
export function pruneWeights(
  weights: ReadonlyMap<string, Float32Array>,
  scores: ReadonlyMap<string, Float64Array>,
  sparsity: number,
  scope: 'global' | 'layer',
): { weights: Map<string, Float32Array>; pruned: number } {
  checkSparsity(sparsity);
  const out = new Map([...weights].map(([k, v]) => [k, v.slice()]));
  let pruned = 0;
  if (scope === 'layer') {
    for (const [k, v] of out) {
      const order = pruneOrder(scores.get(k)!);
      const cut = Math.round(sparsity * v.length);
      for (let i = 0; i < cut; i++) v[order[i]] = 0;
      pruned += cut;
    }
    return { weights: out, pruned };
  }
  const names = [...out.keys()];
  const offsets = [0];
  for (const k of names) offsets.push(offsets[offsets.length - 1] + out.get(k)!.length);
  const all = new Float64Array(offsets[offsets.length - 1]);
  names.forEach((k, j) => all.set(scores.get(k)!, offsets[j]));
  const order = pruneOrder(all);
  const cut = Math.round(sparsity * all.length);
  for (let i = 0; i < cut; i++) {
    const flat = order[i];
    let j = 0;
    while (offsets[j + 1] <= flat) j++;
    out.get(names[j])![flat - offsets[j]] = 0;
  }
  return { weights: out, pruned: cut };
}

function checkSparsity(s: number): void {
  if (!(Number.isFinite(s) && s >= 0 && s <= 1)) throw new Error(`pruning: sparsity must be a number in [0, 1], got ${s}`);
}

/** Saliency of every weight under a criterion. */
export async function pruningScores(model: Model, data: Dataset, weights: ReadonlyMap<string, Float32Array>, criterion: PruningCriterion, opts: { samples?: number; batchSize: number; seed: number }): Promise<Map<string, Float64Array>> {
  if (criterion === 'gradient') return taylorScores(model, data, { weights: [...weights.keys()], samples: opts.samples, batchSize: opts.batchSize });
  const rand = mulberry32(opts.seed);
  return new Map([...weights].map(([k, v]) => [k, Float64Array.from(v, (x) => (criterion === 'magnitude' ? Math.abs(x) : rand()))]));
}

/** Accuracy and loss of the model pruned to each sparsity (Han et al. 2015; Molchanov et al. 2017), with checks. */
export async function pruningCurve(model: Model, data: Dataset, options: PruningOptions = {}): Promise<PruningCurve> {
  const started = performance.now();
  const criterion = options.criterion ?? 'magnitude';
  const scope = options.scope ?? 'global';
  const batchSize = options.batchSize ?? 256;
  const tolerance = options.tolerance ?? 0.01;
  const randomSeed = options.randomSeed === undefined ? 0 : options.randomSeed;
  if (!['magnitude', 'gradient', 'random'].includes(criterion)) throw new Error(`pruningCurve: criterion must be 'magnitude', 'gradient' or 'random', got '${criterion}'`);
  if (scope !== 'global' && scope !== 'layer') throw new Error(`pruningCurve: scope must be 'global' or 'layer', got '${String(scope)}'`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`pruningCurve: batchSize must be a positive integer, got ${batchSize}`);
  if (!(tolerance >= 0)) throw new Error(`pruningCurve: tolerance must be ≥ 0, got ${tolerance}`);
  const sparsities = [...new Set(options.sparsities ?? DEFAULT_SPARSITIES)];
  if (sparsities.length === 0) throw new Error('pruningCurve: no sparsities given');
  sparsities.forEach(checkSparsity);
  sparsities.sort((a, b) => a - b);
  if (data.size < 1) throw new Error('pruningCurve: the dataset is empty');
  const weights = resolveWeights(model, options.weights, 'pruningCurve');
  const shapes = weightShapes(model, weights.keys());

  const evaluator = await WeightEvaluator.create(model, [...weights.keys()], 'pruningCurve');
  try {
    const dense = await evaluator.evaluate(data, weights, shapes, batchSize);
    const reference = await plainAccuracy(model, data, batchSize);
    const curveOf = async (c: PruningCriterion, seed: number): Promise<CurvePoint[]> => {
      const scores = await pruningScores(model, data, weights, c, { samples: options.samples, batchSize, seed });
      const points: CurvePoint[] = [];
      for (const s of sparsities) {
        const p = pruneWeights(weights, scores, s, scope);
        points.push({ sparsity: s, pruned: p.pruned, ...(await evaluator.evaluate(data, p.weights, shapes, batchSize)) });
      }
      return points;
    };
    const curve = await curveOf(criterion, randomSeed ?? 0);
    const random = randomSeed === null || criterion === 'random' ? null : await curveOf('random', randomSeed);
    let frivolous = 0;
    for (const p of curve) {
      if (p.accuracy < dense.accuracy - tolerance) break;
      frivolous = p.sparsity;
    }
    const checks: Check[] = [
      {
        name: 'dense reproduction',
        value: dense.accuracy - reference,
        passed: dense.accuracy === reference,
        detail: `accuracy with the weights fed as inputs (${dense.accuracy}) vs the model as loaded (${reference}); must be equal`,
      },
    ];
    const zero = curve.find((p) => p.sparsity === 0);
    if (zero) checks.push({ name: 'sparsity 0 is dense', value: zero.accuracy - dense.accuracy, passed: zero.accuracy === dense.accuracy, detail: 'the curve at sparsity 0 must equal the dense accuracy exactly' });
    if (random) {
      const gaps = curve.map((p, i) => p.accuracy - random[i].accuracy);
      const high = curve.map((p, i) => [p.sparsity, gaps[i]] as const).filter(([s]) => s >= 0.5);
      checks.push({
        name: 'beats random pruning',
        value: gaps,
        passed: high.length === 0 ? undefined : high.every(([, g]) => g >= 0),
        detail: `${criterion} minus random accuracy at each sparsity; passes when it is ≥ 0 at every sparsity ≥ 0.5`,
      });
    }
    checks.push({ name: 'frivolous weights', value: frivolous, detail: `largest sparsity up to which accuracy stays within ${tolerance} of the dense ${dense.accuracy.toFixed(4)}` });
    return {
      method: 'pruning-curve',
      taxonomy: passiveHidden('global', RAUKER.frivolousWeights),
      criterion,
      scope,
      weights: [...weights].map(([name, v]) => ({ name, size: v.length })),
      dense,
      curve,
      random,
      frivolous,
      checks,
      params: { criterion, scope, sparsities, batchSize, tolerance, samples: options.samples ?? Math.min(data.size, 1000), randomSeed, examples: data.size },
      ms: performance.now() - started,
    };
  } finally {
    await evaluator.dispose();
  }
}

/** Accuracy of the model as loaded (its own session), the reference the fed-weights session must reproduce. */
async function plainAccuracy(model: Model, data: Dataset, batchSize: number): Promise<number> {
  const input = inputName(model, 'pruningCurve');
  let correct = 0;
  for (const b of data.batches(batchSize)) {
    const { outputs } = await model.run({ [input]: b.x });
    correct += crossEntropy(outputs[model.outputs[0].name], b.y).correct;
  }
  return correct / data.size;
}
