/**
 * The randomisation tests of Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim 2018, "Sanity Checks for Saliency
 * Maps" (NeurIPS): an explanation that depends on what the model learnt must change when the learnt parameters, or
 * the labels they were learnt from, are replaced by random ones.
 *
 * - Cascading model-parameter randomisation: re-initialise layers from the output down, one more each step.
 * - Independent randomisation: re-initialise one layer at a time, the rest as trained.
 * - Data (label) randomisation: train the same architecture on permuted labels until it memorises them, and compare
 *   its explanations with those of the normally trained model.
 *
 * Each step is compared with the original explanation by Spearman rank correlation of |attributions| and of the
 * signed ones, and by SSIM of |attributions| each scaled to [0, 1] by its maximum (similarity.ts). The original's
 * self-similarity is measured, not assumed: the method is run again on the unchanged model (a sampling method with
 * another seed), which gives the noise floor. Verdict: a method passes when the mean Spearman (abs) falls to at most
 * `threshold` (default 0.5) × its self-similarity — for cascading with every layer randomised, for independent with
 * each single layer randomised, for data randomisation between the two trained models. Every run explains the
 * classes the original explanation explained (its predicted classes, unless a target is given), whatever the changed
 * model predicts.
 *
 * @example
 * const r = await cascadingRandomization(model, { x }, { method: 'gradient' });
 * r.rows.map((row) => [row.label, row.spearmanAbs]); // [['original', 1], ['fc2', 0.4], ['fc2+fc1', 0.05]]
 * r.checks[0].passed;
 */
import { attributionMethod, type AttributionMethodName } from '../../methods/registry.js';
import type { Check } from '../../methods/attribution/explanation.js';
import type { ExplainOptions, MethodEntry } from '../../methods/attribution/method.js';
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Dataset } from '../../data/datasets/dataset.js';
import type { ModelProto } from '../../onnx/proto.js';
import { parameterLayers, randomizedCopy } from './reinit.js';
import { permutedLabels, trainFresh, type RetrainOptions } from './retrain.js';
import { mapSimilarity, mean } from './similarity.js';

export type Inputs = Readonly<Record<string, Tensor>>;
export type MethodName = AttributionMethodName;

export interface SanityOptions extends ExplainOptions {
  /** The attribution method, by registry name or as an entry. */
  readonly method: MethodName | MethodEntry;
  /** Mean Spearman (abs) at most threshold × self-similarity passes (default 0.5). */
  readonly threshold?: number;
  /** Keep each step's attributions in its row (default false). */
  readonly keepAttributions?: boolean;
}

export interface RandomizationOptions extends SanityOptions {
  /** Seed of the re-initialisation (default 0). */
  readonly initSeed?: number;
  /** Layers to randomise (default: every layer with float32 weights, see parameterLayers). */
  readonly layers?: readonly string[];
}

export interface Similarity {
  /** Means over the examples. */
  readonly spearmanAbs: number;
  readonly spearman: number;
  readonly ssim: number;
  readonly perExample: { readonly spearmanAbs: readonly number[]; readonly spearman: readonly number[]; readonly ssim: readonly number[] };
}

export interface RandomizationRow extends Similarity {
  readonly step: number;
  /** 'original', the randomised layers joined by '+', or 'labels permuted'. */
  readonly label: string;
  readonly randomized: readonly string[];
  readonly attributions?: Tensor<'float32'>;
}

export interface RandomizationResult {
  readonly test: 'cascading' | 'independent' | 'data';
  readonly method: string;
  readonly rows: readonly RandomizationRow[];
  /** The original explanation against a second run of the method on the unchanged model. */
  readonly selfSimilarity: Similarity;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
}

export function resolveMethod(method: MethodName | MethodEntry): { name: string; entry: MethodEntry } {
  if (typeof method !== 'string') return { name: method.info.title, entry: method };
  return { name: method, entry: attributionMethod(method) };
}

/** |a| / max |a| per example: maps of different overall scale made comparable for SSIM. */
function scaledAbs(t: Tensor<'float32'>): Tensor<'float32'> {
  const n = t.shape[0];
  const row = t.size / n;
  const out = new Float32Array(t.size);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let j = 0; j < row; j++) m = Math.max(m, Math.abs(t.data[i * row + j]));
    for (let j = 0; j < row; j++) out[i * row + j] = m > 0 ? Math.abs(t.data[i * row + j]) / m : 0;
  }
  return new Tensor('float32', out, t.shape);
}

/** Spearman (abs and signed) and SSIM of two attribution tensors, per example and on average. */
export function compareAttributions(a: Tensor<'float32'>, b: Tensor<'float32'>): Similarity {
  const perExample = {
    spearmanAbs: mapSimilarity(a, b, 'spearman', { abs: true }),
    spearman: mapSimilarity(a, b, 'spearman'),
    ssim: mapSimilarity(scaledAbs(a), scaledAbs(b), 'ssim', { ssim: { dataRange: 1 } }),
  };
  return { spearmanAbs: mean(perExample.spearmanAbs), spearman: mean(perExample.spearman), ssim: mean(perExample.ssim), perExample };
}

/** The explanation of a model for fixed targets, and the method's self-similarity on it. */
export async function explainTwice(entry: MethodEntry, model: Model, inputs: Inputs, options: SanityOptions) {
  const first = await entry.explain(model, inputs, options);
  // Later runs explain the same classes, whatever the changed model predicts.
  const fixed: ExplainOptions = { ...options, target: options.target ?? (first.targets ? Array.from(first.targets) : undefined) };
  const again = await entry.explain(model, inputs, entry.info.stochastic ? { ...fixed, seed: (options.seed ?? 0) + 1 } : fixed);
  return { original: first.attributions, fixed, self: compareAttributions(first.attributions, again.attributions) };
}

export function verdict(test: string, row: Similarity, self: Similarity, threshold: number, what: string): Check {
  const limit = threshold * self.spearmanAbs;
  return {
    name: `${test} randomization`,
    value: row.spearmanAbs,
    passed: row.spearmanAbs <= limit,
    detail: `mean Spearman (abs) ${what} ${row.spearmanAbs.toFixed(3)}; passes at most ${threshold} × self-similarity ${self.spearmanAbs.toFixed(3)} = ${limit.toFixed(3)}`,
  };
}

function checkThreshold(threshold: number): number {
  if (!(threshold > 0 && threshold < 1)) throw new Error(`sanity check: threshold must be in (0, 1), got ${threshold}`);
  return threshold;
}

async function layerSteps(
  test: 'cascading' | 'independent',
  model: Model,
  inputs: Inputs,
  options: RandomizationOptions,
  plan: (layers: readonly string[]) => string[][],
): Promise<RandomizationResult> {
  const threshold = checkThreshold(options.threshold ?? 0.5);
  const { name, entry } = resolveMethod(options.method);
  const all = parameterLayers(model).map((l) => l.name);
  const chosen = options.layers ?? all;
  if (chosen.length === 0) throw new Error(`${test} randomization: the model has no layers with float32 weights to randomise`);
  for (const l of chosen) if (!all.includes(l)) throw new Error(`${test} randomization: no layer '${l}' (layers with weights: ${all.join(', ')})`);
  const ordered = all.filter((l) => chosen.includes(l)).reverse(); // from the output down
  const initSeed = options.initSeed ?? 0;
  const { original, fixed, self } = await explainTwice(entry, model, inputs, options);
  const steps = [[], ...plan(ordered)];
  const rows: RandomizationRow[] = [];
  for (const [step, randomized] of steps.entries()) {
    options.signal?.throwIfAborted();
    const copy = await randomizedCopy(model, randomized, initSeed);
    try {
      const a = (await entry.explain(copy, inputs, fixed)).attributions;
      const label = randomized.length === 0 ? 'original' : randomized.join('+');
      rows.push({ step, label, randomized, ...compareAttributions(original, a), ...(options.keepAttributions ? { attributions: a } : {}) });
    } finally {
      await copy.dispose();
    }
  }
  const judged = test === 'cascading' ? [rows[rows.length - 1]] : rows.slice(1);
  const checks = judged.map((r) => verdict(test, r, self, threshold, `with ${r.label} randomised`));
  const overall: Check = test === 'cascading' ? checks[0] : { ...checks[0], value: checks.map((c) => c.value as number), passed: checks.every((c) => c.passed), detail: checks.map((c) => c.detail).join('; ') };
  return { test, method: name, rows, selfSimilarity: self, checks: [overall], params: { threshold, initSeed, layers: ordered, init: 'truncated normal (±2σ), σ = RMS of the replaced weight' } };
}

/**
 * Cascading randomisation: step k re-initialises the k layers nearest the output (step 0 rewrites nothing, so its
 * attributions are the original's, computed through the same copy-and-reload path).
 */
export function cascadingRandomization(model: Model, inputs: Inputs, options: RandomizationOptions): Promise<RandomizationResult> {
  return layerSteps('cascading', model, inputs, options, (layers) => layers.map((_, k) => layers.slice(0, k + 1)));
}

/** Independent randomisation: step k re-initialises only the k-th layer from the output, the rest as trained. */
export function independentRandomization(model: Model, inputs: Inputs, options: RandomizationOptions): Promise<RandomizationResult> {
  return layerSteps('independent', model, inputs, options, (layers) => layers.map((l) => [l]));
}

export interface DataRandomizationOptions extends SanityOptions, RetrainOptions {
  /** The untrained architecture (a builder's ModelProto): both models start from its weights. */
  readonly architecture: ModelProto;
  /** Training examples with class labels (keep it small: the permuted labels must be memorised). */
  readonly train: Dataset;
  /** Seed of the label permutation (default 0). */
  readonly labelSeed?: number;
  /** The random-label model must reach this training accuracy on its permuted labels (default 0.9). */
  readonly minTrainAccuracy?: number;
  /** The normally trained model; default: `architecture` trained here on the true labels with the same settings. */
  readonly trained?: Model;
}

/**
 * Data randomisation: the explanations of a model trained on the true labels against those of the same
 * architecture trained (same initial weights, same settings) on permuted labels of the same examples. The result has
 * one row, and two checks: that the random-label model memorised its labels (else the comparison means little), and
 * the verdict.
 */
export async function dataRandomization(inputs: Inputs, options: DataRandomizationOptions): Promise<RandomizationResult> {
  const threshold = checkThreshold(options.threshold ?? 0.5);
  const minAcc = options.minTrainAccuracy ?? 0.9;
  if (!(minAcc >= 0 && minAcc <= 1)) throw new Error(`data randomization: minTrainAccuracy must be in [0, 1], got ${minAcc}`);
  const { name, entry } = resolveMethod(options.method);
  const labelSeed = options.labelSeed ?? 0;
  const shuffled = permutedLabels(options.train, labelSeed);
  const normal = options.trained ?? (await trainFresh(options.architecture, options.train, options)).model;
  let random: Model | undefined;
  try {
    const fitted = await trainFresh(options.architecture, shuffled, options);
    random = fitted.model;
    const { original, fixed, self } = await explainTwice(entry, normal, inputs, options);
    const a = (await entry.explain(random, inputs, fixed)).attributions;
    const row: RandomizationRow = { step: 1, label: 'labels permuted', randomized: ['labels'], ...compareAttributions(original, a), ...(options.keepAttributions ? { attributions: a } : {}) };
    const memorised: Check = {
      name: 'random labels memorised',
      value: fitted.trainAccuracy,
      passed: fitted.trainAccuracy >= minAcc,
      detail: `training accuracy on the permuted labels ${fitted.trainAccuracy.toFixed(3)} (needs ≥ ${minAcc}; train longer or on fewer examples otherwise)`,
    };
    return {
      test: 'data',
      method: name,
      rows: [row],
      selfSimilarity: self,
      checks: [verdict('data', row, self, threshold, 'between the true-label and the random-label model'), memorised],
      params: { threshold, labelSeed, epochs: options.epochs ?? 5, batchSize: options.batchSize ?? 32, examples: options.train.size },
    };
  } finally {
    await random?.dispose();
    if (!options.trained) await normal.dispose();
  }
}
