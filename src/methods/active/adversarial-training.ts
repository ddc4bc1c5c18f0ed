/**
 * Adversarial training (Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks"): every
 * batch is replaced by its PGD adversary — a random start in the L∞ ball of radius ε, then k signed-gradient steps of
 * size α on the cross-entropy of the current weights, each projected back onto the ball and the input range — and the
 * step trains on it. Räuker et al. (2023, §V) list it as an intrinsic method because robust models are claimed to have
 * perceptually aligned gradients (Tsipras et al. 2019, "Robustness May Be at Odds with Accuracy"; Santurkar, Engstrom
 * et al. 2019, "Image Synthesis with a Single (Robust) Classifier"): their input gradients look like the digit.
 *
 * `trainAdversarial` trains the model against its unregularised twin (twin.ts) and measures both claims: robust
 * accuracy under a PGD attack of the same ε on the test data, and how much of the class-logit input gradient's energy
 * lies on the digit's own ink (with its cosine to the class's mean image), plus the gradients side by side as a PNG.
 *
 * @example
 * const model = mlp({ inputs: [1, 28, 28], hidden: [128], classes: 10, seed: 1 });
 * const r = await trainAdversarial(model, { train, test, epochs: 2, batchSize: 64, seed: 1, eps: 0.1 });
 * r.robustAccuracy; r.alignment; r.checks; await writeFile('gradients.png', r.png);
 */
import type { Batch, Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import type { Trainer } from '../../model/train/index.js';
import type { ModelProto } from '../../onnx/proto.js';
import { imageGrid } from '../../report/grid.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { synthesize } from '../neurons/synthesis.js';
import { pgd } from '../representations/adversarial.js';
import { active, RAUKER_INTRINSIC, type MethodInfo } from '../taxonomy.js';
import { trainTwins, type Regularizer, type TwinOptions, type Twins } from './twin.js';

export interface PgdTrainingOptions {
  /** PGD steps per batch (default 7) and step size (default 2.5·ε/steps, as Madry et al.). */
  readonly steps?: number;
  readonly alpha?: number;
  /** Start at a uniform point of the ε-ball (default true). */
  readonly randomStart?: boolean;
  /** Valid input range (default [0, 1]); null: unbounded. */
  readonly range?: readonly [number, number] | null;
  /** Seed of the random starts (default 1). */
  readonly seed?: number;
}

/** What `glassbox train --adversarial EPS` hands the trainer, and the bookkeeping of what it did. */
export interface AdversarialRegularizer extends Regularizer {
  readonly transform: (batch: Batch, trainer: Trainer) => Promise<Batch>;
  /** Batches perturbed so far, and the largest |x_adv − x| seen (≤ ε). */
  readonly stats: { batches: number; maxPerturbation: number; meanLoss: number };
}

function resolve(eps: number, o: PgdTrainingOptions) {
  if (!(Number.isFinite(eps) && eps > 0)) throw new Error(`adversarial training: ε must be a finite number > 0, got ${eps}`);
  const steps = o.steps ?? 7;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`adversarial training: steps must be an integer ≥ 1, got ${steps}`);
  const alpha = o.alpha ?? (2.5 * eps) / steps;
  if (!(Number.isFinite(alpha) && alpha > 0)) throw new Error(`adversarial training: α must be a finite number > 0, got ${alpha}`);
  const range = o.range === undefined ? ([0, 1] as const) : o.range;
  if (range && !(range[0] < range[1])) throw new Error(`adversarial training: range must be [lo, hi] with lo < hi, got [${range.join(', ')}]`);
  return { eps, steps, alpha, range, randomStart: o.randomStart ?? true, seed: o.seed ?? 1 };
}

/**
 * The PGD batch transform (Madry et al. 2018) for FitOptions.transform: each batch becomes its L∞ adversary under the
 * trainer's current weights (∂CE/∂x from `trainer.inputGradient`). The random starts come from one seeded stream.
 */
export function adversarialTraining(eps: number, options: PgdTrainingOptions = {}): AdversarialRegularizer {
  const o = resolve(eps, options);
  const rand = mulberry32(o.seed);
  const stats = { batches: 0, maxPerturbation: 0, meanLoss: 0 };
  const project = (x0: Float32Array, adv: Float32Array) => {
    for (let i = 0; i < adv.length; i++) {
      let v = Math.min(x0[i] + o.eps, Math.max(x0[i] - o.eps, adv[i]));
      if (o.range) v = Math.min(o.range[1], Math.max(o.range[0], v));
      adv[i] = v;
    }
  };
  const transform = async (batch: Batch, trainer: Trainer): Promise<Batch> => {
    if (batch.x.dtype !== 'float32') throw new Error(`adversarial training: the input must be float32, got ${batch.x.dtype}`);
    const x0 = batch.x.data as Float32Array;
    const adv = Float32Array.from(x0);
    if (o.randomStart) for (let i = 0; i < adv.length; i++) adv[i] += (2 * rand() - 1) * o.eps;
    project(x0, adv);
    let loss = 0;
    for (let k = 0; k < o.steps; k++) {
      const r = await trainer.inputGradient({ x: Tensor.float32(adv, batch.x.shape), y: batch.y });
      loss = r.loss;
      const g = r.grad.data;
      for (let i = 0; i < adv.length; i++) adv[i] += o.alpha * Math.sign(g[i]);
      project(x0, adv);
    }
    for (let i = 0; i < adv.length; i++) stats.maxPerturbation = Math.max(stats.maxPerturbation, Math.abs(adv[i] - x0[i]));
    stats.meanLoss += (loss - stats.meanLoss) / ++stats.batches;
    return { ...batch, x: Tensor.float32(adv, batch.x.shape) };
  };
  return { transform, stats };
}

/** Accuracy on clean inputs and under PGD (same ε, true labels) of a classifier, over `data` in batches. */
export async function robustAccuracy(model: Model, data: Dataset, options: { eps: number; steps?: number; alpha?: number; seed?: number; batchSize?: number }): Promise<{ clean: number; robust: number }> {
  const steps = options.steps ?? 10;
  const alpha = options.alpha ?? (2.5 * options.eps) / steps;
  let [clean, robust] = [0, 0];
  for (const b of data.batches(options.batchSize ?? 256)) {
    const labels = Array.from(b.y.data as BigInt64Array, Number);
    const r = await pgd(model, b.x, { eps: options.eps, alpha, steps, randomStart: true, labels, seed: options.seed ?? 1, norm: 'linf' });
    clean += labels.filter((y, i) => r.cleanPredictions[i] === y).length;
    robust += labels.filter((y, i) => r.predictions[i] === y).length;
  }
  return { clean: clean / data.size, robust: robust / data.size };
}

/** How perceptually aligned a model's input gradients are. */
export interface GradientAlignment {
  /** Mean over images of the fraction of ‖∇ₓ logit_y‖² that lies on the image's ink (pixels > `ink`). */
  readonly inkEnergy: number;
  /** Mean cosine between ∇ₓ logit_y and (mean image of class y − mean image of all classes). */
  readonly classCosine: number;
  /** The gradients, [n, ...input shape]. */
  readonly gradients: Tensor<'float32'>;
}

/**
 * Input gradients of each image's label logit and how much they look like the digit (Santurkar/Engstrom et al.'s
 * claim): energy on ink, and the cosine with the class's mean image (from `means`, [classes, D], minus their mean).
 */
export async function gradientAlignment(model: Model, x: Tensor<'float32'>, labels: ArrayLike<number>, means: Float64Array, options: { ink?: number } = {}): Promise<GradientAlignment> {
  const [n, ...shape] = x.shape;
  const d = shape.reduce((a, b) => a * b, 1);
  const classes = means.length / d;
  if (!Number.isInteger(classes) || labels.length !== n) throw new Error(`gradientAlignment: ${labels.length} labels and class means of ${means.length} values for ${n} inputs of ${d} values`);
  const ink = options.ink ?? 0.2;
  const input = model.inputs[0].name;
  const output = model.outputs[0].name;
  const seed = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) {
    if (!(labels[i] >= 0 && labels[i] < classes)) throw new Error(`gradientAlignment: label ${labels[i]} of input ${i} is outside 0..${classes - 1}`);
    seed[i * classes + labels[i]] = 1;
  }
  const g = (await model.grad({ [input]: x }, { of: output, wrt: [input], seed: Tensor.float32(seed, [n, classes]) })).grads[input] as Tensor<'float32'>;
  const grand = new Float64Array(d);
  for (let c = 0; c < classes; c++) for (let p = 0; p < d; p++) grand[p] += means[c * d + p] / classes;
  let [energy, cosine] = [0, 0];
  for (let i = 0; i < n; i++) {
    let [on, all, dot, nm] = [0, 0, 0, 0];
    for (let p = 0; p < d; p++) {
      const v = g.data[i * d + p];
      all += v * v;
      if (x.data[i * d + p] > ink) on += v * v;
      const m = means[labels[i] * d + p] - grand[p];
      dot += v * m;
      nm += m * m;
    }
    energy += all > 0 ? on / all : 0;
    cosine += all > 0 && nm > 0 ? dot / Math.sqrt(all * nm) : 0;
  }
  return { inkEnergy: energy / n, classCosine: cosine / n, gradients: g };
}

/** Mean image per class, [classes, D], streamed over `data`. */
export function classMeans(data: Dataset<'float32'>, classes: number): Float64Array {
  const d = data.inputShape.reduce((a, b) => a * b, 1);
  const sums = new Float64Array(classes * d);
  const counts = new Float64Array(classes);
  for (const b of data.batches(512)) {
    const y = b.y.data as BigInt64Array;
    for (let i = 0; i < y.length; i++) {
      const c = Number(y[i]);
      counts[c]++;
      for (let p = 0; p < d; p++) sums[c * d + p] += b.x.data[i * d + p];
    }
  }
  for (let c = 0; c < classes; c++) for (let p = 0; p < d; p++) sums[c * d + p] /= Math.max(1, counts[c]);
  return sums;
}

export interface AdversarialOptions extends TwinOptions {
  readonly eps: number;
  /** PGD during training (default 7 steps of 2.5·ε/7). */
  readonly training?: PgdTrainingOptions;
  /** PGD of the evaluation (default 10 steps of 2.5·ε/10, random start). */
  readonly attack?: { readonly steps?: number; readonly alpha?: number };
  /** Test images whose input gradients are compared (default the first 200) and shown (default 8). */
  readonly gradientImages?: number;
  readonly shown?: number;
}

/** Each class logit's synthesis (Olah et al.-style, pixels, TV-regularised) and its cosine with the class's mean image. */
export interface ClassSyntheses {
  /** [classes, ...inputShape]. */
  readonly images: Tensor<'float32'>;
  /** Per class: cosine of the centred synthesis with the centred class mean. */
  readonly cosine: Float64Array;
  readonly meanCosine: number;
}

/**
 * What a model "draws" for each class: synthesize() of every class logit from the same seed, scored by the cosine
 * with the class's mean training image — the perceptual alignment Santurkar et al. 2019 report for robust models.
 */
export async function classSyntheses(model: Model, means: Float64Array, inputShape: readonly number[], options: { steps?: number; seed?: number } = {}): Promise<ClassSyntheses> {
  const d = inputShape.reduce((a, b) => a * b, 1);
  const classes = means.length / d;
  const images = new Float32Array(classes * d);
  const cosine = new Float64Array(classes);
  for (let c = 0; c < classes; c++) {
    const s = await synthesize(model, { kind: 'class', index: c }, { steps: options.steps ?? 64, parametrization: 'pixel', tv: 0.01, seed: options.seed ?? 1 });
    const img = s.images.data as Float32Array;
    images.set(img, c * d);
    cosine[c] = centredCosine(img, means.subarray(c * d, (c + 1) * d));
  }
  return { images: Tensor.float32(images, [classes, ...inputShape]), cosine, meanCosine: cosine.reduce((a, b) => a + b, 0) / classes };
}

function centredCosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) [ma, mb] = [ma + a[i] / n, mb + b[i] / n];
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    const [u, v] = [a[i] - ma, b[i] - mb];
    [ab, aa, bb] = [ab + u * v, aa + u * u, bb + v * v];
  }
  return ab / Math.sqrt(aa * bb || 1);
}

export interface AdversarialTrainingResult {
  readonly twins: Twins;
  readonly eps: number;
  readonly robustAccuracy: { readonly regularized: number; readonly twin: number };
  readonly alignment: { readonly regularized: GradientAlignment; readonly twin: GradientAlignment };
  /** Rows: test images, the twin's label-logit gradients, the robust model's (each image stretched to its range). */
  readonly png: Uint8Array;
  /** Class syntheses side by side: the twin's row above the robust model's. */
  readonly syntheses: { readonly regularized: ClassSyntheses; readonly twin: ClassSyntheses; readonly png: Uint8Array };
  readonly checks: Check[];
}

/** Madry et al.'s PGD training against its unregularised twin; see the module doc. */
export async function trainAdversarial(model: ModelProto, options: AdversarialOptions): Promise<AdversarialTrainingResult> {
  const regularizer = adversarialTraining(options.eps, { seed: options.seed, ...options.training });
  const twins = await trainTwins(model, regularizer, options);
  const attack = { eps: options.eps, ...options.attack, seed: options.seed };
  const [rr, rt] = [await robustAccuracy(twins.regularized.model, options.test, attack), await robustAccuracy(twins.twin.model, options.test, attack)];
  const k = Math.min(options.test.size, options.gradientImages ?? 200);
  const { x, y } = options.test.gather(Int32Array.from({ length: k }, (_, i) => i));
  const labels = Array.from(y.data as BigInt64Array, Number);
  const classes = Number(options.test.numClasses);
  const means = classMeans(options.train as Dataset<'float32'>, classes);
  const xf = x as Tensor<'float32'>;
  const [ar, at] = [await gradientAlignment(twins.regularized.model, xf, labels, means), await gradientAlignment(twins.twin.model, xf, labels, means)];
  const shown = Math.min(k, options.shown ?? 8);
  const row = x.data.length / k;
  const pick = (t: Tensor) => (t.data as Float32Array).subarray(0, shown * row);
  const panel = Tensor.float32(Float32Array.of(...pick(x), ...pick(at.gradients), ...pick(ar.gradients)), [3 * shown, ...x.shape.slice(1)]);
  const [sr, st] = [await classSyntheses(twins.regularized.model, means, x.shape.slice(1), { seed: options.seed }), await classSyntheses(twins.twin.model, means, x.shape.slice(1), { seed: options.seed })];
  const both = Tensor.float32(Float32Array.of(...st.images.data, ...sr.images.data), [2 * classes, ...x.shape.slice(1)]);
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  return {
    twins, eps: options.eps,
    syntheses: { regularized: sr, twin: st, png: imageGrid(both, { columns: classes, scale: 2 }) },
    robustAccuracy: { regularized: rr.robust, twin: rt.robust },
    alignment: { regularized: ar, twin: at },
    png: imageGrid(panel, { columns: shown, normalize: 'each', scale: 2 }),
    checks: [
      ...twins.checks,
      {
        name: 'perturbation within ε',
        value: regularizer.stats.maxPerturbation,
        passed: regularizer.stats.maxPerturbation <= options.eps * (1 + 1e-6),
        detail: `largest |x_adv − x| over ${regularizer.stats.batches} training batches vs ε = ${options.eps}`,
      },
      {
        name: 'robust accuracy gain',
        value: rr.robust - rt.robust,
        passed: rr.robust > rt.robust,
        detail: `accuracy under PGD (L∞, ε = ${options.eps}, ${attack.steps ?? 10} steps, random start) ${pct(rr.robust)} adversarially trained vs ${pct(rt.robust)} for the twin; clean ${pct(rr.clean)} vs ${pct(rt.clean)}`,
      },
      {
        name: 'gradient energy on ink',
        value: ar.inkEnergy - at.inkEnergy,
        passed: ar.inkEnergy > at.inkEnergy,
        detail: `share of ‖∇ₓ logit_y‖² on the digit's pixels: ${pct(ar.inkEnergy)} adversarially trained vs ${pct(at.inkEnergy)} for the twin (${k} test images)`,
      },
      {
        name: 'gradient–class-mean cosine',
        value: ar.classCosine - at.classCosine,
        passed: ar.classCosine > at.classCosine,
        detail: `cosine of ∇ₓ logit_y with the class's mean image (centred): ${ar.classCosine.toFixed(3)} adversarially trained vs ${at.classCosine.toFixed(3)} for the twin`,
      },
      {
        name: 'synthesis–class-mean cosine',
        value: sr.meanCosine - st.meanCosine,
        passed: sr.meanCosine > st.meanCosine,
        detail: `mean over classes of the cosine between each class logit's synthesis and the class's mean image: ${sr.meanCosine.toFixed(3)} adversarially trained vs ${st.meanCosine.toFixed(3)} for the twin`,
      },
    ],
  };
}

export const ADVERSARIAL_TRAINING_METHODS = {
  'adversarial-training': {
    info: {
      title: 'PGD adversarial training, against the unregularised twin',
      reference: 'Madry et al. 2018, Towards deep learning models resistant to adversarial attacks',
      taxonomy: active('hidden semantics', 'global', RAUKER_INTRINSIC.adversarialTraining),
      stochastic: true,
    },
    run: trainAdversarial,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
