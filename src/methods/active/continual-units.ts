/**
 * Continual learning read as an interpretation (Räuker et al. 2023, §II): which hidden units serve which task, from
 * the per-weight importances EWC or SI assign (continual.ts), tested by ablation; and the comparison of EWC or SI
 * against its fine-tuning twin on split MNIST, with the registry entries.
 */
import { mulberry32 } from '../../data/datasets/random.js';
import type { Intervention } from '../../model/interventions.js';
import { Model } from '../../model/model.js';
import type { ModelProto } from '../../onnx/proto.js';
import type { Check } from '../attribution/explanation.js';
import { active, RAUKER_INTRINSIC, type MethodInfo } from '../taxonomy.js';
import { denseLayers, taskAccuracy, trainContinual, type ContinualRun, type ContinualTrainOptions, type Task, type WeightMap } from './continual.js';

/** Which units of one hidden layer serve which task, read from the per-weight importances. */
export interface UnitSpecialisation {
  /** The layer's output site (alias), where the ablation zeroes units. */
  readonly site: string;
  /** perTask[t][j]: unit j's share of task t's importance over the layer (its incoming weights, bias and outgoing weights). */
  readonly perTask: readonly Float64Array[];
  /** The task whose (normalised) importance dominates each unit. */
  readonly dominant: Int32Array;
  /** Fraction of units whose largest task share exceeds `threshold` (of the unit's shares summed over tasks). */
  readonly specialisation: number;
  /** The same fraction with each task's importances shuffled across units (mean over the shuffles). */
  readonly shuffled: number;
  /** Fraction of shuffles reaching the actual index (a permutation p-value). */
  readonly pValue: number;
}

/**
 * Per-unit importance per task of every hidden dense layer, normalised per task so that tasks with larger Fisher
 * magnitudes do not dominate, and its specialisation index against independently shuffled importances.
 */
export function unitSpecialisation(model: Model, importance: readonly WeightMap[], options: { threshold?: number; shuffles?: number; seed?: number } = {}): UnitSpecialisation[] {
  const threshold = options.threshold ?? 0.5;
  const shuffles = options.shuffles ?? 200;
  if (!(threshold > 0 && threshold < 1)) throw new Error(`unitSpecialisation: threshold must be in (0, 1), got ${threshold}`);
  if (importance.length < 2) throw new Error(`unitSpecialisation: needs the importances of at least two tasks, got ${importance.length}`);
  const layers = denseLayers(model.graph, 'unitSpecialisation');
  const rand = mulberry32(options.seed ?? 0);
  return layers.slice(0, -1).map((l, k) => {
    const next = layers[k + 1];
    const perTask = importance.map((imp, t) => {
      const get = (name: string | undefined) => {
        const v = name === undefined ? undefined : imp.get(name);
        if (name !== undefined && !v) throw new Error(`unitSpecialisation: task ${t} has no importance for weight '${name}'`);
        return v;
      };
      const [w, b, out] = [get(l.weight)!, get(l.bias), get(next.weight)!];
      const u = Float64Array.from({ length: l.units }, (_, j) => {
        let s = b ? b[j] : 0;
        for (let i = 0; i < l.inputs; i++) s += w[j * l.inputs + i];
        for (let o = 0; o < next.units; o++) s += out[o * next.inputs + j];
        return s;
      });
      const total = u.reduce((a, v) => a + v, 0);
      return u.map((v) => (total > 0 ? v / total : 0));
    });
    const index = (rows: readonly Float64Array[]) => {
      let n = 0;
      for (let j = 0; j < l.units; j++) {
        const sum = rows.reduce((a, r) => a + r[j], 0);
        if (sum > 0 && Math.max(...rows.map((r) => r[j])) > threshold * sum) n++;
      }
      return n / l.units;
    };
    const actual = index(perTask);
    let mean = 0;
    let above = 0;
    for (let s = 0; s < shuffles; s++) {
      const v = index(perTask.map((r) => shuffle(r, rand)));
      mean += v / shuffles;
      if (v >= actual) above++;
    }
    const dominant = Int32Array.from({ length: l.units }, (_, j) => perTask.reduce((m, r, t) => (r[j] > perTask[m][j] ? t : m), 0));
    return { site: model.site(l.output).name, perTask, dominant, specialisation: actual, shuffled: mean, pValue: (above + 1) / (shuffles + 1) };
  });
}

function shuffle(v: Float64Array, rand: () => number): Float64Array {
  const out = v.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** The effect of zeroing each task's most important units on every task. */
export interface UnitAblation {
  readonly site: string;
  /** Units zeroed per task. */
  readonly k: number;
  readonly units: readonly (readonly number[])[];
  /** lossIncrease[t][s]: rise of task s's test cross-entropy when task t's top-k units are zeroed. */
  readonly lossIncrease: readonly (readonly number[])[];
  /** accuracyDrop[t][s], likewise. */
  readonly accuracyDrop: readonly (readonly number[])[];
  /** Tasks t whose own loss rises more than the mean rise of the other tasks. */
  readonly selective: number;
}

/** Zeroes the k units of `spec`'s layer most important for each task and tests every task (task-restricted softmax). */
export async function ablateTaskUnits(model: Model, tasks: readonly Task[], spec: UnitSpecialisation, k: number): Promise<UnitAblation> {
  if (!Number.isInteger(k) || k < 1 || k > spec.perTask[0].length) throw new Error(`ablateTaskUnits: k must be an integer in [1, ${spec.perTask[0].length}], got ${k}`);
  if (spec.perTask.length !== tasks.length) throw new Error(`ablateTaskUnits: ${spec.perTask.length} importances for ${tasks.length} tasks`);
  const base = await Promise.all(tasks.map((t) => taskAccuracy(model, t)));
  const units = spec.perTask.map((r) => [...r.keys()].sort((a, b) => r[b] - r[a]).slice(0, k));
  const lossIncrease: number[][] = [];
  const accuracyDrop: number[][] = [];
  for (const u of units) {
    const iv: Intervention[] = [{ site: spec.site, kind: 'zero', units: u }];
    const after = await Promise.all(tasks.map((t) => taskAccuracy(model, t, iv)));
    lossIncrease.push(after.map((a, s) => a.loss - base[s].loss));
    accuracyDrop.push(after.map((a, s) => base[s].accuracy - a.accuracy));
  }
  const selective = lossIncrease.filter((row, t) => row[t] > row.reduce((a, v, s) => a + (s === t ? 0 : v), 0) / (row.length - 1)).length;
  return { site: spec.site, k, units, lossIncrease, accuracyDrop, selective };
}

export interface ContinualOptions extends Omit<ContinualTrainOptions, 'method'> {
  readonly method: 'ewc' | 'si';
  /** The fine-tuning twin, already trained on the same tasks with the same settings (shared between methods). */
  readonly twin?: ContinualRun;
  /** Units zeroed per task in the ablation check (default 10% of the layer). */
  readonly ablate?: number;
  readonly threshold?: number;
  readonly shuffles?: number;
}

export interface ContinualResult {
  readonly run: ContinualRun;
  readonly twin: ContinualRun;
  readonly units: readonly UnitSpecialisation[];
  readonly ablation: readonly UnitAblation[];
  readonly checks: readonly Check[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** EWC or SI against its fine-tuning twin, with the reading of its importances as task specialisation. */
export async function continualLearning(model: ModelProto, options: ContinualOptions): Promise<ContinualResult> {
  const run = await trainContinual(model, options);
  const twin = options.twin ?? (await trainContinual(model, { ...options, method: 'finetune' }));
  if (twin.method !== 'finetune' || twin.matrix.length !== options.tasks.length) throw new Error('continualLearning: the twin given must be a fine-tuning run over the same tasks');
  const units = unitSpecialisation(run.model, run.importance, { threshold: options.threshold, shuffles: options.shuffles, seed: options.seed });
  const ablation: UnitAblation[] = [];
  for (const u of units) ablation.push(await ablateTaskUnits(run.model, options.tasks, u, options.ablate ?? Math.max(1, Math.round(u.perTask[0].length / 10))));
  const T = options.tasks.length;
  const checks: Check[] = [
    {
      name: 'forgets less than fine-tuning',
      value: twin.forgetting - run.forgetting,
      passed: run.forgetting < twin.forgetting,
      detail: `${run.method} forgetting ${pct(run.forgetting)} vs ${pct(twin.forgetting)} for the fine-tuned twin; final average accuracy ${pct(run.averageAccuracy)} vs ${pct(twin.averageAccuracy)}`,
    },
    { name: 'accuracy cost', value: twin.matrix[T - 1][T - 1] - run.matrix[T - 1][T - 1], detail: `accuracy on the last task ${pct(run.matrix[T - 1][T - 1])} vs ${pct(twin.matrix[T - 1][T - 1])} for the twin (the plasticity the penalty costs)` },
    ...units.map((u) => ({
      name: `specialisation of ${u.site}`,
      value: u.specialisation,
      passed: u.pValue < 0.05,
      detail: `${pct(u.specialisation)} of units dominated (> ${options.threshold ?? 0.5} of their importance) by one task vs ${pct(u.shuffled)} with shuffled importances (p = ${u.pValue.toFixed(3)})`,
    })),
    ...ablation.map((a) => ({
      name: `ablation of ${a.site}`,
      value: a.selective,
      passed: a.selective > T / 2,
      detail: `zeroing each task's ${a.k} most important units raises that task's loss more than the others' mean for ${a.selective}/${T} tasks (own ${a.lossIncrease.map((r, t) => r[t].toFixed(3)).join(', ')})`,
    })),
  ];
  return { run, twin, units, ablation, checks };
}

export const CONTINUAL_METHODS = {
  ewc: {
    info: { title: 'Elastic weight consolidation', reference: 'Kirkpatrick et al. 2017, Overcoming catastrophic forgetting in neural networks', taxonomy: active('hidden semantics', 'global', RAUKER_INTRINSIC.continualLearning) },
    run: (model: ModelProto, options: Omit<ContinualOptions, 'method'>) => continualLearning(model, { ...options, method: 'ewc' }),
  },
  'synaptic-intelligence': {
    info: { title: 'Synaptic intelligence', reference: 'Zenke, Poole, Ganguli 2017, Continual Learning Through Synaptic Intelligence', taxonomy: active('hidden semantics', 'global', RAUKER_INTRINSIC.continualLearning) },
    run: (model: ModelProto, options: Omit<ContinualOptions, 'method'>) => continualLearning(model, { ...options, method: 'si' }),
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
