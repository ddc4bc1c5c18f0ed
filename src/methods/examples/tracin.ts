/**
 * TracIn (Pruthi, Liu, Kale, Sundararajan 2020, "Estimating Training Data Influence by Tracing Gradient Descent"),
 * the checkpoint form TracInCP: TracIn(z, z') = Σ_k η_k ∇L(z; w_k) · ∇L(z'; w_k) over saved checkpoints w_k with the
 * learning rate η_k they were trained with. Positive: z is a proponent of z' (steps on z lowered the loss on z');
 * self-influence TracIn(z, z) is high for examples the model finds hard to fit, such as mislabelled ones.
 *
 * Gradients are those of the last dense layer (the paper's own cheap variant): for that layer the per-example
 * gradient is (p − onehot(y)) ⊗ [a, 1], so a dot product is ((p − y) · (p' − y')) (ã · ã') and no gradient vector
 * is ever formed.
 *
 * @example
 * const checkpoints = await fitWithCheckpoints(trainer, train, { epochs: 3, batchSize: 32, seed: 1 });
 * const r = await tracin(checkpoints, train, test.slice(0, 2));
 * r.selfInfluence; // rank training examples by it to find mislabelled ones
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { Model } from '../../model/model.js';
import type { FitOptions, Trainer } from '../../model/train/trainer.js';
import { encodeModel } from '../../onnx/proto.js';
import type { Check } from '../attribution/explanation.js';
import { gradientCheck, lastLayer, lastLayerFeatures, topExamples, type Features, type RankedExample, type StageProgress } from './influence.js';

export interface TracInCheckpoint {
  readonly model: Model;
  /** The learning rate the steps after (or up to) this checkpoint were taken with. */
  readonly lr: number;
}

/** Trains and keeps the model after every epoch with that epoch's learning rate: TracIn's checkpoints. */
export async function fitWithCheckpoints(trainer: Trainer, train: Dataset, fit: Omit<FitOptions, 'onEpoch'>): Promise<TracInCheckpoint[]> {
  const saved: { bytes: Uint8Array; lr: number }[] = [];
  await trainer.fit(train, { ...fit, onEpoch: (r) => saved.push({ bytes: encodeModel(trainer.exportModel()), lr: r.lr }) });
  return Promise.all(saved.map(async (s) => ({ model: await Model.load(s.bytes), lr: s.lr })));
}

export interface TracInResult {
  readonly method: 'tracin';
  readonly checkpoints: number;
  /** TracIn(z_i, z_t) per test example t, per training example i. */
  readonly scores: readonly Float64Array[];
  /** TracIn(z_i, z_i) per training example. */
  readonly selfInfluence: Float64Array;
  /** Proponents (largest scores) and opponents (most negative). */
  helpful(t: number, k: number): RankedExample[];
  harmful(t: number, k: number): RankedExample[];
  readonly checks: Check[];
}

/** TracInCP over the checkpoints' last dense layers, for every training and test example. */
export async function tracin(checkpoints: readonly TracInCheckpoint[], train: Dataset, test: Dataset, options: { batchSize?: number; onProgress?: StageProgress } = {}): Promise<TracInResult> {
  if (checkpoints.length === 0) throw new Error('TracIn: needs at least one checkpoint');
  checkpoints.forEach((c, k) => {
    if (!(c.lr > 0) || !Number.isFinite(c.lr)) throw new Error(`TracIn: checkpoint ${k} has learning rate ${c.lr}; it must be a positive number`);
  });
  const scores = Array.from({ length: test.size }, () => new Float64Array(train.size));
  const selfInfluence = new Float64Array(train.size);
  const gradErrors: number[] = [];
  for (const [k, { model, lr }] of checkpoints.entries()) {
    const stage = `checkpoint ${k + 1}/${checkpoints.length}`;
    const layer = lastLayer(model);
    const F = await lastLayerFeatures(model, layer, train, options.batchSize, options.onProgress, `${stage}: training features`);
    const T = await lastLayerFeatures(model, layer, test, options.batchSize, options.onProgress, `${stage}: test features`);
    gradErrors.push((await gradientCheck(model, layer, train, F)).value as number);
    const rF = residuals(F);
    const rT = residuals(T);
    const { c, d } = F;
    for (let i = 0; i < F.n; i++) {
      let rr = 0;
      let aa = 0;
      for (let k = 0; k < c; k++) rr += rF[i * c + k] ** 2;
      for (let j = 0; j < d; j++) aa += F.a[i * d + j] ** 2;
      selfInfluence[i] += lr * rr * aa;
      for (let t = 0; t < T.n; t++) {
        let r = 0;
        let a = 0;
        for (let k = 0; k < c; k++) r += rF[i * c + k] * rT[t * c + k];
        for (let j = 0; j < d; j++) a += F.a[i * d + j] * T.a[t * d + j];
        scores[t][i] += lr * r * a;
      }
    }
  }
  const worst = Math.max(...gradErrors);
  const at = (t: number) => {
    if (!(t >= 0 && t < scores.length)) throw new Error(`TracIn: test example ${t} out of range [0, ${scores.length})`);
    return scores[t];
  };
  return {
    method: 'tracin',
    checkpoints: checkpoints.length,
    scores,
    selfInfluence,
    helpful: (t, k) => topExamples(at(t), k, 'largest'),
    harmful: (t, k) => topExamples(at(t), k, 'smallest'),
    checks: [
      { name: 'closed-form gradient matches autodiff', value: worst, passed: worst < 1e-4, detail: `worst over ${checkpoints.length} checkpoints of max |(p − y) ⊗ [a, 1] − model.grad| / max |model.grad| on training example 0` },
    ],
  };
}

/** p − onehot(y) per example [n, c]. */
function residuals(F: Features): Float64Array {
  const r = F.p.slice();
  for (let i = 0; i < F.n; i++) r[i * F.c + F.y[i]] -= 1;
  return r;
}
