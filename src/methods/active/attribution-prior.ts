/**
 * Attribution priors: training a model to be right for the right reasons (Ross, Hughes, Doshi-Velez 2017, "Right for
 * the Right Reasons: Training Differentiable Models by Constraining their Explanations"). The loss adds
 *
 *   λ · mean over the batch of Σ_d A_d · (∂/∂x_d Σ_k log p_k(x))²
 *
 * for an annotation mask A of input regions the model must not use: the input gradient is a value of the step graph
 * (TermBuilder.grad), and the step differentiates through it (double backpropagation).
 *
 * Ground truth: decoy MNIST (Ross et al. §4.2): a square patch in the top-left corner whose grey level encodes the
 * class in the training data and is drawn at random at test time. The unregularised twin learns the decoy and loses
 * accuracy on the shuffled test set; the model trained with the prior (A = the patch) ignores it. Its attributions
 * then put less mass on the decoy, which the evaluation metrics of src/evaluate/ are run on, for both models.
 *
 * @example
 * const train = decoyMnist((await loadMnist('train')).slice(0, 3000), { decoy: 'label' });
 * const test = decoyMnist((await loadMnist('test')).slice(0, 1000), { decoy: 'shuffled', seed: 1 });
 * const r = await rightForTheRightReasons(mlp({ inputs: [1, 28, 28], hidden: [100], classes: 10, seed: 1 }), { train, test, lambda: 10, epochs: 1, batchSize: 32, seed: 1 });
 * r.twins.regularized.accuracy; r.decoyMass; r.checks;
 */
import { dataset, type Dataset } from '../../data/datasets/dataset.js';
import { mixSeed, mulberry32 } from '../../data/datasets/random.js';
import { METRICS } from '../../evaluate/index.js';
import type { Model } from '../../model/model.js';
import type { LossTerm } from '../../model/train/index.js';
import { Graph } from '../../onnx/graph.js';
import { attr, type ModelProto } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { attributionMethod, type AttributionMethodName } from '../registry.js';
import { active, type MethodInfo } from '../taxonomy.js';
import { testAccuracy, trainTwins, type Regularizer, type TrainedRun, type Twins, type TwinOptions } from './twin.js';

export type DecoyMode = 'label' | 'shuffled' | 'none';

/** Grey level of the decoy for class c: (c + 1)/(classes + 1), never the background's 0. */
export const decoyLevel = (c: number, classes: number) => (c + 1) / (classes + 1);

/**
 * Images [C, H, W] with a `size`×`size` decoy patch in the top-left corner of every channel: its grey level encodes
 * the label ('label'), a class drawn at random per example and seed ('shuffled'), or nothing ('none': patch zero).
 */
export function decoyMnist(data: Dataset, options: { decoy: DecoyMode; size?: number; seed?: number }): Dataset<'float32'> {
  const size = options.size ?? 4;
  const { decoy } = options;
  const shape = data.inputShape;
  if (data.inputDType !== 'float32' || shape.length !== 3) throw new Error(`decoyMnist: ${data.name} must hold float32 images [C, H, W], it holds ${data.inputDType} [${shape.join(', ')}]`);
  if (!Number.isInteger(size) || size < 1 || size > Math.min(shape[1], shape[2])) throw new Error(`decoyMnist: size must be an integer in [1, ${Math.min(shape[1], shape[2])}], got ${size}`);
  if (!['label', 'shuffled', 'none'].includes(decoy)) throw new Error(`decoyMnist: decoy must be 'label', 'shuffled' or 'none', got '${String(decoy)}'`);
  const classes = data.numClasses;
  if (!classes) throw new Error(`decoyMnist: ${data.name} has no number of classes`);
  const seed = options.seed ?? 0;
  const [C, H, W] = shape;
  return dataset<'float32'>({
    name: `${data.name}+decoy(${decoy})`,
    size: data.size,
    inputShape: shape,
    inputDType: 'float32',
    numClasses: classes,
    classNames: data.classNames,
    labels: data.labels,
    gather(ix) {
      const b = data.gather(ix);
      const x = (b.x.data as Float32Array).slice();
      const y = b.y.data as BigInt64Array;
      ix.forEach((i, e) => {
        const c = decoy === 'label' ? Number(y[e]) : Math.floor(mulberry32(mixSeed(seed, i))() * classes);
        const v = decoy === 'none' ? 0 : decoyLevel(c, classes);
        for (let ch = 0; ch < C; ch++) for (let r = 0; r < size; r++) x.fill(v, e * C * H * W + ch * H * W + r * W, e * C * H * W + ch * H * W + r * W + size);
      });
      return { x: Tensor.float32(x, b.x.shape), y: b.y };
    },
  });
}

/** The annotation mask of the decoy: 1 on the patch, 0 elsewhere, [1, C, H, W]. */
export function decoyMask(shape: readonly number[], size = 4): Tensor<'float32'> {
  const [C, H, W] = shape;
  const m = new Float32Array(C * H * W);
  for (let ch = 0; ch < C; ch++) for (let r = 0; r < size; r++) m.fill(1, ch * H * W + r * W, ch * H * W + r * W + size);
  return Tensor.float32(m, [1, ...shape]);
}

/** Ross et al.'s penalty as a graph term: mean over the batch of Σ mask · (∂ Σ_k log p_k / ∂x)². */
export function rightReasonsTerm(mask: Tensor<'float32'>, lambda: number): LossTerm {
  if (!(Number.isFinite(lambda) && lambda >= 0)) throw new Error(`right for the right reasons: lambda must be a non-negative number, got ${lambda}`);
  for (let i = 0; i < mask.size; i++) if (!Number.isFinite(mask.data[i])) throw new Error(`right for the right reasons: the mask holds ${mask.data[i]} at ${i}`);
  const perExample = mask.size / (mask.shape[0] ?? 1);
  return {
    name: 'rrr',
    weight: lambda,
    build: (b) => {
      const xs = b.info(b.input).shape ?? [];
      if (xs.length !== mask.shape.length || xs.slice(1).join() !== mask.shape.slice(1).join()) {
        throw new Error(`right for the right reasons: the mask is [${mask.shape.join(', ')}], the input '${b.input}' is [${xs.join(', ')}]`);
      }
      // ∂(Σ_k log p_k)/∂z = 1 − C·softmax(z): the seed of the logits' input gradient (itself differentiated by the step)
      const C = Number((b.info(b.logits).shape ?? []).at(-1));
      const p = b.op('Softmax', [b.logits], [attr('axis', { int: -1 })]);
      const seed = b.op('Sub', [b.constant(Tensor.float32([1], [])), b.op('Mul', [p, b.constant(Tensor.float32([C], []))])]);
      const [dx] = b.grad(b.logits, [b.input], seed);
      const masked = b.op('Mul', [b.op('Mul', [dx, dx]), b.constant(mask)]);
      // mean over every value × values per example = Σ over the example's values, averaged over the batch
      return b.op('Mul', [b.op('ReduceMean', [masked], [attr('keepdims', { int: 0 })]), b.constant(Tensor.float32([perExample], []))]);
    },
  };
}

/** What `glassbox train --regularize rrr --mask <file> --lambda λ` hands the trainer. */
export function attributionPriorRegularizer(model: ModelProto, mask: Tensor<'float32'>, lambda: number): Regularizer & { terms: LossTerm[] } {
  const input = new Graph(model).inputs[0];
  const shape = input?.shape?.slice(1) ?? [];
  if (shape.join() !== mask.shape.slice(1).join()) throw new Error(`attributionPriorRegularizer: the mask is [${mask.shape.join(', ')}], the model's input '${input?.name}' is [${(input?.shape ?? []).join(', ')}]`);
  return { terms: [rightReasonsTerm(mask, lambda)] };
}

/** How one model's attributions read on decoy images. */
export interface AttributionScore {
  /** Mean over examples of Σ_patch |a| / Σ |a|. */
  readonly decoyMass: number;
  /** Deletion AUC (lower: the score falls faster as the most attributed pixels go). */
  readonly deletion: number;
  /** Infidelity (lower: the attribution predicts the effect of random perturbations better). */
  readonly infidelity: number;
}

/** Integrated-gradients attributions of the true class on `x`, scored by decoy mass, deletion and infidelity. */
export async function scoreAttributions(model: Model, x: Tensor<'float32'>, labels: readonly number[], mask: Tensor<'float32'>, options: { method?: AttributionMethodName; seed?: number } = {}): Promise<AttributionScore> {
  const method: AttributionMethodName = options.method ?? 'integrated-gradients';
  const inputs = { [model.inputs[0].name]: x };
  const a = await attributionMethod(method).explain(model, inputs, { target: labels });
  const R = mask.size;
  const v = a.attributions.data as Float32Array;
  let mass = 0;
  for (let e = 0; e < labels.length; e++) {
    let on = 0;
    let all = 0;
    for (let i = 0; i < R; i++) {
      const m = Math.abs(v[e * R + i]);
      all += m;
      on += m * mask.data[i];
    }
    mass += all > 0 ? on / all : 0;
  }
  const o = { target: labels, seed: options.seed ?? 0 };
  const deletion = await METRICS.deletion.evaluate(model, inputs, method, { ...o, step: 16 });
  const infidelity = await METRICS.infidelity.evaluate(model, inputs, method, { ...o, samples: 50, scaling: 'optimal' });
  return { decoyMass: mass / labels.length, deletion: deletion.mean, infidelity: infidelity.mean };
}

export interface RightReasonsOptions extends TwinOptions {
  readonly lambda: number;
  /** Side of the decoy patch (default 4). */
  readonly size?: number;
  /** Examples whose attributions are scored (default 32, from the test data with the decoy drawn from the label). */
  readonly explain?: number;
}

export interface RightReasonsResult {
  readonly twins: Twins;
  /** Accuracy on test images whose decoy encodes the label (what the twin's shortcut is worth). */
  readonly decoyAccuracy: { readonly regularized: number; readonly twin: number };
  readonly scores: { readonly regularized: AttributionScore; readonly twin: AttributionScore };
  readonly checks: readonly Check[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * Trains with the decoy-mask prior and without it; `train` should carry the decoy ('label'), `test` a shuffled one.
 * Scores both models' attributions on test images with the label decoy, where a shortcut would show.
 */
export async function rightForTheRightReasons(model: ModelProto, options: RightReasonsOptions): Promise<RightReasonsResult> {
  const mask = decoyMask(options.train.inputShape, options.size);
  const twins = await trainTwins(model, attributionPriorRegularizer(model, mask, options.lambda), options);
  const tempting = decoyMnist(options.test, { decoy: 'label', size: options.size });
  const decoyAccuracy = { regularized: (await testAccuracy(twins.regularized.model, tempting)).accuracy, twin: (await testAccuracy(twins.twin.model, tempting)).accuracy };
  const batch = tempting.gather(Array.from({ length: Math.min(options.explain ?? 32, tempting.size) }, (_, i) => i));
  const labels = Array.from(batch.y.data as BigInt64Array, Number);
  const score = (r: TrainedRun) => scoreAttributions(r.model, batch.x as Tensor<'float32'>, labels, mask, { seed: options.seed });
  const scores = { regularized: await score(twins.regularized), twin: await score(twins.twin) };
  const { regularized: r, twin: t } = scores;
  const checks: Check[] = [
    ...twins.checks,
    {
      name: 'right for the right reasons',
      value: twins.regularized.accuracy - twins.twin.accuracy,
      passed: twins.regularized.accuracy > twins.twin.accuracy,
      detail: `accuracy on decoy-shuffled test data ${pct(twins.regularized.accuracy)} with the prior vs ${pct(twins.twin.accuracy)} for the twin (with the decoy encoding the label: ${pct(decoyAccuracy.regularized)} vs ${pct(decoyAccuracy.twin)})`,
    },
    { name: 'attribution mass on the decoy', value: r.decoyMass, passed: r.decoyMass < t.decoyMass, detail: `integrated gradients put ${pct(r.decoyMass)} of |attribution| on the decoy patch with the prior vs ${pct(t.decoyMass)} for the twin` },
    { name: 'deletion AUC', value: r.deletion - t.deletion, detail: `deletion AUC ${r.deletion.toFixed(3)} with the prior vs ${t.deletion.toFixed(3)} for the twin (lower is better)` },
    { name: 'infidelity', value: r.infidelity - t.infidelity, detail: `infidelity ${r.infidelity.toExponential(3)} with the prior vs ${t.infidelity.toExponential(3)} for the twin (lower is better)` },
  ];
  return { twins, decoyAccuracy, scores, checks };
}

export const ATTRIBUTION_PRIOR_METHODS = {
  'right-for-the-right-reasons': {
    info: { title: 'Right for the right reasons (input-gradient prior)', reference: 'Ross, Hughes, Doshi-Velez 2017, Right for the Right Reasons', taxonomy: active('attribution', 'local') },
    run: rightForTheRightReasons,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
