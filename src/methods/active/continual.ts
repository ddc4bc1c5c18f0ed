/**
 * Continual learning as an interpretation (Räuker et al. 2023, §II "continual learning": the importance a method
 * assigns to each weight per task says which weights — and, summed, which units — serve which task).
 *
 * - **EWC** (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural networks"): after task t, the
 *   diagonal *empirical* Fisher F_t = mean over examples of (∂ log p(y|x)/∂θ)² (per-example squared gradients of
 *   the log-likelihood of the true label, with the task's softmax), and the penalty Σ_t (λ/2)·Σ_i F_t,i (θ_i − θ*_t,i)².
 * - **Synaptic intelligence** (Zenke, Poole, Ganguli 2017, "Continual Learning Through Synaptic Intelligence"): the
 *   path integral ω_i = Σ_steps −g_i·Δθ_i (g the gradient of the task loss alone, before the penalty) accumulated
 *   after every step; at the end of task t, Ω_i += ω_i / (Δ_i² + ξ) with Δ the task's total move; the same
 *   quadratic penalty (λ/2)·Σ_i Ω_i (θ_i − θ*_i)² around the weights at the end of the last task.
 *
 * Both are host terms (terms.ts). Split MNIST (tasks {0,1}, {2,3}, …) is learnt task after task with ONE shared
 * 10-way output layer whose softmax, during training and testing on task t, is restricted to t's classes
 * (task-incremental learning, as in van de Ven & Tolias 2019, "Three scenarios for continual learning"); the
 * unregularised twin is plain fine-tuning. Reported: the accuracy matrix, average accuracy and forgetting, and the
 * interpretation: importance per unit per task, a specialisation index against shuffled importances, and the
 * ablation check.
 *
 * @example
 * const tasks = splitTasks(await loadMnist('train'), await loadMnist('test'), { trainPerTask: 2000, testPerTask: 400 });
 * const r = await continualLearning(mlp({ inputs: [1, 28, 28], hidden: [100, 100], classes: 10, seed: 1 }), { tasks, method: 'ewc', lambda: 1000, batchSize: 32, seed: 1 });
 * r.run.matrix; r.twin.averageAccuracy; r.units[0].specialisation; r.checks;
 */
import type { Batch, Dataset } from '../../data/datasets/dataset.js';
import type { Intervention } from '../../model/interventions.js';
import { Model } from '../../model/model.js';
import { Trainer, type HostTerm, type LossTerm, type OptimizerConfig } from '../../model/train/index.js';
import { Graph } from '../../onnx/graph.js';
import { attr, encodeModel, getAttr, type ModelProto } from '../../onnx/proto.js';
import { tensorFromProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';

/** Weights by name (a Fisher, an importance, an anchor). */
export type WeightMap = ReadonlyMap<string, Float32Array>;

export const SPLIT_MNIST: readonly (readonly number[])[] = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]];

export interface Task {
  readonly classes: readonly number[];
  readonly train: Dataset;
  readonly test: Dataset;
}

/** The first `trainPerTask` / `testPerTask` examples of each task's classes (default: all). */
export function splitTasks(train: Dataset, test: Dataset, options: { tasks?: readonly (readonly number[])[]; trainPerTask?: number; testPerTask?: number } = {}): Task[] {
  const tasks = options.tasks ?? SPLIT_MNIST;
  const classes = train.numClasses ?? 0;
  const seen = new Set<number>();
  tasks.forEach((t, i) => {
    if (t.length < 2) throw new Error(`splitTasks: task ${i} has ${t.length} class(es); a task needs at least two`);
    for (const c of t) {
      if (!Number.isInteger(c) || c < 0 || c >= classes) throw new Error(`splitTasks: task ${i} has class ${c}; ${train.name} has ${classes} classes`);
      if (seen.has(c)) throw new Error(`splitTasks: class ${c} is in two tasks`);
      seen.add(c);
    }
  });
  const pick = (d: Dataset, cls: readonly number[], max: number | undefined, i: number) => {
    if (!d.labels) throw new Error(`splitTasks: ${d.name} has no class labels`);
    const ix: number[] = [];
    for (let k = 0; k < d.size && ix.length < (max ?? Infinity); k++) if (cls.includes(d.labels[k])) ix.push(k);
    if (ix.length === 0) throw new Error(`splitTasks: ${d.name} has no examples of task ${i} (classes ${cls.join(', ')})`);
    return d.subset(ix, `${d.name}[task ${cls.join('/')}]`);
  };
  return tasks.map((cls, i) => ({ classes: cls, train: pick(train, cls, options.trainPerTask, i), test: pick(test, cls, options.testPerTask, i) }));
}

export const TASK_OFFSET = 'task.offset';
export const TASK_ONEHOT = 'task.onehot';
const OFF = -1e4; // added to the logits of classes outside the task: exp underflows to 0, so they get no gradient

/** The logit offset of a task: 0 on its classes, −1e4 elsewhere ([1, C]). */
export function taskOffset(classes: readonly number[], numClasses: number): Tensor<'float32'> {
  return Tensor.float32(Array.from({ length: numClasses }, (_, c) => (classes.includes(c) ? 0 : OFF)), [1, numClasses]);
}

/** Cross-entropy over the task's classes only (a graph term for head 'none'), fed the offset and one-hot labels. */
export function taskLoss(numClasses: number): LossTerm {
  const keep = [attr('keepdims', { int: 0 })];
  return {
    name: 'task-ce',
    weight: 1,
    build: (b) => {
      const z = b.op('Add', [b.logits, b.feed(TASK_OFFSET, 'float32', [1, numClasses])]);
      const logp = b.op('LogSoftmax', [z], [attr('axis', { int: -1 })]);
      const y = b.feed(TASK_ONEHOT, 'float32', ['N', numClasses]);
      return b.op('Neg', [b.op('ReduceMean', [b.op('ReduceSum', [b.op('Mul', [y, logp]), b.constant(Tensor.int64([1]))], keep)], keep)]);
    },
  };
}

/** The extra inputs of taskLoss for one batch. */
export function taskFeeds(batch: Batch, offset: Tensor<'float32'>): Record<string, Tensor> {
  const C = offset.shape[1];
  const y = batch.y.data as BigInt64Array;
  const onehot = new Float32Array(y.length * C);
  y.forEach((v, i) => {
    if (offset.data[Number(v)] !== 0) throw new Error(`task loss: example ${batch.indices[i]} has label ${v}, outside the task's classes`);
    onehot[i * C + Number(v)] = 1;
  });
  return { [TASK_OFFSET]: offset, [TASK_ONEHOT]: Tensor.float32(onehot, [y.length, C]) };
}

/** A dense layer y = x·Wᵀ + b (Gemm, transB = 1, W [out, in]) whose weight is an initializer. */
export interface DenseLayer {
  readonly weight: string;
  readonly bias?: string;
  readonly input: string;
  readonly output: string;
  readonly units: number;
  readonly inputs: number;
}

/** The model's dense layers in graph order; any other weight-bearing op is an error naming it. */
export function denseLayers(g: Graph, who: string): DenseLayer[] {
  const out: DenseLayer[] = [];
  for (const n of g.nodes) {
    const w = n.input.map((i) => g.initializers.get(i)).find((t) => t && t.dims.length >= 2);
    if (!w) continue;
    const flag = (k: string) => Number(getAttr(n, k)?.i ?? 0n);
    if (n.opType !== 'Gemm' || n.input[1] !== w.name || flag('transA') !== 0 || flag('transB') !== 1) {
      throw new Error(`${who}: node '${n.name}' (${n.opType}) is not a dense Gemm layer with transB = 1; only MLPs of such layers are supported`);
    }
    out.push({ weight: w.name, bias: n.input[2] || undefined, input: n.input[0], output: n.output[0], units: Number(w.dims[0]), inputs: Number(w.dims[1]) });
  }
  if (out.length === 0) throw new Error(`${who}: the model has no dense layers`);
  return out;
}

/**
 * The diagonal empirical Fisher of the task's log-likelihood, mean over `data`, for every dense weight and bias.
 * Per-example gradients of a dense layer are outer products: ∂ log p/∂W[o,i] = δ[o]·a[i] with δ = ∂ log p/∂(layer
 * output) and a its input, so (∂/∂W)² sums δ²·a² over examples — exact, one backward per batch (Model.grad with the
 * seed onehot(y) − softmax_task(z) = ∂ log p(y|x)/∂z).
 */
export async function empiricalFisher(model: Model, data: Dataset, classes: readonly number[], batchSize = 256): Promise<Map<string, Float32Array>> {
  const layers = denseLayers(model.graph, 'empiricalFisher');
  const input = model.inputs[0].name;
  const of = model.outputs[0].name;
  const C = Number(model.outputs[0].shape?.[1]);
  if (classes.length === 0 || classes.some((c) => !Number.isInteger(c) || c < 0 || c >= C)) throw new Error(`empiricalFisher: classes [${classes.join(', ')}] must be a non-empty list of the model's ${C} classes`);
  const fisher = new Map<string, Float32Array>();
  const acc = layers.map((l) => ({ w: new Float64Array(l.units * l.inputs), b: new Float64Array(l.units) }));
  if (data.size === 0) throw new Error(`empiricalFisher: ${data.name} is empty`);
  for (const batch of data.batches(batchSize)) {
    const logits = (await model.run({ [input]: batch.x })).outputs[of];
    const n = batch.y.size;
    const seed = new Float32Array(n * C);
    const y = batch.y.data as BigInt64Array;
    for (let e = 0; e < n; e++) {
      if (!classes.includes(Number(y[e]))) throw new Error(`empiricalFisher: example ${batch.indices[e]} of ${data.name} has label ${y[e]}, not one of the task's classes ${classes.join(', ')}`);
      const z = logits.data as Float32Array;
      const top = Math.max(...classes.map((c) => z[e * C + c]));
      const s = classes.reduce((a, c) => a + Math.exp(z[e * C + c] - top), 0);
      for (const c of classes) seed[e * C + c] = (Number(y[e]) === c ? 1 : 0) - Math.exp(z[e * C + c] - top) / s;
    }
    const seedT = Tensor.float32(seed, [n, C]);
    const wrt = layers.filter((l) => l.output !== of).map((l) => l.output);
    const r = await model.grad({ [input]: batch.x }, { of, seed: seedT, wrt, capture: layers.map((l) => l.input) });
    layers.forEach((l, k) => {
      const d = (l.output === of ? seedT : r.grads[l.output]).data as Float32Array;
      const a = r.captures[l.input].data as Float32Array;
      const { w, b } = acc[k];
      for (let e = 0; e < n; e++) {
        for (let o = 0; o < l.units; o++) {
          const d2 = d[e * l.units + o] ** 2;
          if (d2 === 0) continue;
          b[o] += d2;
          const row = o * l.inputs;
          const ai = e * l.inputs;
          for (let i = 0; i < l.inputs; i++) w[row + i] += d2 * a[ai + i] * a[ai + i];
        }
      }
    });
  }
  layers.forEach((l, k) => {
    fisher.set(l.weight, Float32Array.from(acc[k].w, (v) => v / data.size));
    if (l.bias) fisher.set(l.bias, Float32Array.from(acc[k].b, (v) => v / data.size));
  });
  return fisher;
}

/** A host term that remembers past tasks: after each task it is told the task's importance and end weights. */
export interface ConsolidationTerm extends HostTerm {
  /** Called when a task starts (SI resets its path integral). */
  beginTask(weights: WeightMap): void;
  /** Called when a task ends; returns the importance it assigns to each weight for that task. */
  endTask(weights: WeightMap, fisher?: () => Promise<Map<string, Float32Array>>): Promise<Map<string, Float32Array>>;
}

function positive(who: string, what: string, v: number): number {
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`${who}: ${what} must be a positive number, got ${v}`);
  return v;
}

/** Adds (λ/2)·Σ I(θ − θ*)² of one anchor to grads; returns its value. */
function quadratic(lambda: number, importance: WeightMap, anchor: WeightMap, weights: WeightMap, grads: WeightMap): number {
  let value = 0;
  for (const [name, f] of importance) {
    const p = weights.get(name);
    const g = grads.get(name);
    const a = anchor.get(name)!;
    if (!p || !g) continue; // a weight not being trained
    for (let i = 0; i < p.length; i++) {
      const d = p[i] - a[i];
      value += f[i] * d * d;
      g[i] += lambda * f[i] * d;
    }
  }
  return (lambda / 2) * value;
}

const copy = (w: WeightMap) => new Map([...w].map(([k, v]) => [k, v.slice()]));

/** EWC: one quadratic penalty per past task, around its end weights, weighted by its empirical Fisher. */
export function ewcTerm(lambda: number): ConsolidationTerm & { readonly tasks: { importance: WeightMap; anchor: WeightMap }[] } {
  positive('ewc', 'lambda', lambda);
  const tasks: { importance: WeightMap; anchor: WeightMap }[] = [];
  return {
    name: 'ewc',
    tasks,
    penalty: (weights, grads) => tasks.reduce((s, t) => s + quadratic(lambda, t.importance, t.anchor, weights, grads), 0),
    beginTask() {},
    async endTask(weights, fisher) {
      if (!fisher) throw new Error('ewc: endTask needs the Fisher of the task just learnt');
      const importance = await fisher();
      tasks.push({ importance, anchor: copy(weights) });
      return importance;
    },
  };
}

/** Synaptic intelligence: path integral per step, Ω += ω/(Δ² + ξ) per task, one penalty around the last end. */
export function siTerm(lambda: number, xi = 0.1): ConsolidationTerm & { readonly omega: WeightMap; readonly Omega: WeightMap } {
  positive('synaptic intelligence', 'lambda', lambda);
  positive('synaptic intelligence', 'xi', xi);
  const omega = new Map<string, Float32Array>();
  const Omega = new Map<string, Float32Array>();
  let start = new Map<string, Float32Array>();
  let anchor: Map<string, Float32Array> | undefined;
  let before = new Map<string, Float32Array>();
  let taskGrad = new Map<string, Float32Array>();
  return {
    name: 'si',
    omega,
    Omega,
    penalty(weights, grads) {
      before = copy(weights);
      taskGrad = copy(grads); // the task loss's gradient, before the penalty's is added
      return anchor ? quadratic(lambda, Omega, anchor, weights, grads) : 0;
    },
    afterStep(weights) {
      for (const [name, p] of weights) {
        const w = omega.get(name)!;
        const g = taskGrad.get(name)!;
        const b = before.get(name)!;
        for (let i = 0; i < p.length; i++) w[i] -= g[i] * (p[i] - b[i]);
      }
    },
    beginTask(weights) {
      start = copy(weights);
      for (const [name, p] of weights) omega.set(name, new Float32Array(p.length));
      if (Omega.size === 0) for (const [name, p] of weights) Omega.set(name, new Float32Array(p.length));
    },
    async endTask(weights) {
      const importance = new Map<string, Float32Array>();
      for (const [name, p] of weights) {
        const w = omega.get(name)!;
        const s = start.get(name)!;
        const imp = Float32Array.from(p, (v, i) => Math.max(0, w[i]) / ((v - s[i]) ** 2 + xi));
        const O = Omega.get(name)!;
        for (let i = 0; i < O.length; i++) O[i] += imp[i];
        importance.set(name, imp);
      }
      anchor = copy(weights);
      return importance;
    },
  };
}

/** Accuracy and mean cross-entropy of the task, the argmax and softmax restricted to its classes. */
export async function taskAccuracy(model: Model, task: Task, interventions: readonly Intervention[] = [], batchSize = 500): Promise<{ accuracy: number; loss: number }> {
  const input = model.inputs[0].name;
  const of = model.outputs[0].name;
  let correct = 0;
  let loss = 0;
  for (const b of task.test.batches(batchSize)) {
    const z = (await model.run({ [input]: b.x }, { interventions: [...interventions] })).outputs[of].data as Float32Array;
    const C = z.length / b.y.size;
    (b.y.data as BigInt64Array).forEach((yv, e) => {
      const y = Number(yv);
      const best = task.classes.reduce((m, c) => (z[e * C + c] > z[e * C + m] ? c : m), task.classes[0]);
      const s = task.classes.reduce((a, c) => a + Math.exp(z[e * C + c] - z[e * C + best]), 0);
      correct += best === y ? 1 : 0;
      loss += Math.log(s) - (z[e * C + y] - z[e * C + best]);
    });
  }
  return { accuracy: correct / task.test.size, loss: loss / task.test.size };
}

export type ContinualMethod = 'ewc' | 'si' | 'finetune';

export interface ContinualTrainOptions {
  readonly tasks: readonly Task[];
  readonly method: ContinualMethod;
  /** Penalty strength λ (ignored by 'finetune'). */
  readonly lambda?: number;
  /** SI's damping ξ (default 0.1). */
  readonly xi?: number;
  readonly batchSize: number;
  readonly seed: number;
  /** Epochs per task (default 1). */
  readonly epochs?: number;
  /** Default Adam, lr 1e-3. */
  readonly optimizer?: OptimizerConfig;
  /** Training examples per task the EWC Fisher averages over (default all of the task's). */
  readonly fisherExamples?: number;
}

export interface ContinualRun {
  readonly method: ContinualMethod;
  /** matrix[k][t]: accuracy on task t's test data after learning tasks 0…k. */
  readonly matrix: readonly (readonly number[])[];
  /** Mean accuracy over all tasks after the last. */
  readonly averageAccuracy: number;
  /** Mean over tasks but the last of (best accuracy before the end − final accuracy) (Chaudhry et al. 2018). */
  readonly forgetting: number;
  /** The importance of every weight per task (EWC: the Fisher; SI: ω/(Δ² + ξ)); empty for fine-tuning. */
  readonly importance: readonly Map<string, Float32Array>[];
  readonly proto: ModelProto;
  readonly model: Model;
  readonly seconds: number;
}

/** Learns the tasks one after the other with one trainer (the optimiser state carries over), testing after each. */
export async function trainContinual(model: ModelProto, options: ContinualTrainOptions): Promise<ContinualRun> {
  const { tasks, method, batchSize, seed } = options;
  const epochs = options.epochs ?? 1;
  if (tasks.length < 2) throw new Error(`continual learning: give at least two tasks, got ${tasks.length}`);
  if (!['ewc', 'si', 'finetune'].includes(method)) throw new Error(`continual learning: unknown method '${method}'; use ewc, si or finetune`);
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`continual learning: epochs must be a positive integer, got ${epochs}`);
  const started = performance.now();
  const numClasses = tasks[0].train.numClasses ?? 1 + Math.max(...tasks.flatMap((t) => t.classes));
  const term = method === 'ewc' ? ewcTerm(options.lambda ?? NaN) : method === 'si' ? siTerm(options.lambda ?? NaN, options.xi) : undefined;
  const trainer = await Trainer.create(model, { optimizer: options.optimizer ?? { kind: 'adam', lr: 1e-3 }, head: 'none', terms: [taskLoss(numClasses)], hostTerms: term ? [term] : [] });
  const params = new Map([...trainer.weights].map(([k, t]) => [k, t.data]));
  const load = async () => Model.load(encodeModel(trainer.exportModel()));
  const matrix: number[][] = [];
  const importance: Map<string, Float32Array>[] = [];
  let current: Model | undefined;
  try {
    for (const [k, task] of tasks.entries()) {
      const offset = taskOffset(task.classes, numClasses);
      term?.beginTask(params);
      for (let e = 0; e < epochs; e++) {
        for (const b of task.train.batches(batchSize, { shuffle: true, seed: seed + 1000 * k, epoch: e, dropLast: task.train.size >= batchSize })) {
          await trainer.step(b, taskFeeds(b, offset));
        }
      }
      current = await load();
      const m = current;
      if (term) {
        const fisherData = options.fisherExamples ? task.train.slice(0, options.fisherExamples) : task.train;
        importance.push(await term.endTask(params, () => empiricalFisher(m, fisherData, task.classes)));
      }
      const row: number[] = [];
      for (const t of tasks) row.push((await taskAccuracy(m, t)).accuracy);
      matrix.push(row);
    }
  } finally {
    await trainer.dispose();
  }
  const T = tasks.length;
  const last = matrix[T - 1];
  const forgetting = last.slice(0, T - 1).reduce((s, a, t) => s + Math.max(...matrix.slice(t, T - 1).map((r) => r[t])) - a, 0) / (T - 1);
  return {
    method,
    matrix,
    averageAccuracy: last.reduce((a, b) => a + b, 0) / T,
    forgetting,
    importance,
    proto: trainer.exportModel(),
    model: current!,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * What `glassbox train --regularize ewc --previous prev.onnx --previous-data task1 --lambda λ` hands the trainer
 * (one dataset per run): the EWC penalty of one past task, around the previous model's weights, with its empirical
 * Fisher on that task's data (all classes unless given). SI needs the path of the previous training: API only.
 */
export async function ewcRegularizer(previous: ModelProto, data: Dataset, options: { lambda: number; classes?: readonly number[]; examples?: number }): Promise<{ hostTerms: HostTerm[] }> {
  const term = ewcTerm(options.lambda);
  const g = new Graph(previous);
  denseLayers(g, 'ewcRegularizer');
  const model = await Model.load(encodeModel(previous));
  const C = Number(model.outputs[0].shape?.[1]);
  const classes = options.classes ?? Array.from({ length: C }, (_, c) => c);
  for (const c of classes) if (!Number.isInteger(c) || c < 0 || c >= C) throw new Error(`ewcRegularizer: class ${c} is not one of the model's ${C} classes`);
  const anchor = new Map([...g.initializers.values()].filter((t) => t.dataType === 1).map((t) => [t.name, tensorFromProto(t).data as Float32Array]));
  await term.endTask(anchor, () => empiricalFisher(model, options.examples ? data.slice(0, options.examples) : data, classes));
  return { hostTerms: [term] };
}
