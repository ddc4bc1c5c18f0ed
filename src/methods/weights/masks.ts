/**
 * Weight masking (Räuker et al. 2023, II): learn which weights a subtask needs. Each weight W gets a mask m of its
 * shape and the network runs with W ⊙ m, W frozen; the mask minimises the cross-entropy on the task's examples plus
 * λ times its expected size (the fraction of weights kept), then is binarised (m > 0.5). What survives is the
 * subnetwork for the task; its accuracy off the task shows whether it is specialised (Csordás, van Steenkiste &
 * Schmidhuber 2021, "Are Neural Nets Modular? Inspecting Functional Modularity Through Differentiable Weight Masks";
 * Zhang et al. 2021; Cao, Sanh & Rush 2021, "Low-Complexity Probing via Finding Subnetworks").
 *
 * - 'l1': m = sigmoid(a), penalty λ·mean(m).
 * - 'l0': m a hard-concrete gate (Louizos, Welling & Kingma 2018, "Learning Sparse Neural Networks through L0
 *   Regularization"): u ~ U(0, 1), s = sigmoid((a + log u − log(1 − u))/β), m = clip(s(ζ − γ) + γ, 0, 1) with
 *   β = 2/3, γ = −0.1, ζ = 1.1; penalty λ·mean P(m ≠ 0) = λ·mean sigmoid(a − β log(−γ/ζ)).
 *
 * The rewritten graph computes W' = W ⊙ gate(u) with u a graph input per weight (Sigmoid, and for L0 the stretch and
 * Clip, inside the graph), so the gradient w.r.t. u comes from model.grad; the noise, the penalty's gradient and Adam
 * run on the host. Both gates are binarised at a > 0 (the deterministic gate is then ≥ 0.5).
 *
 * @example
 * const r = await learnWeightMask(model, train, { task: [3], penalty: 'l0', lambda: 1, steps: 300, lr: 0.05, seed: 1 });
 * r.kept; // weights kept per layer
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mixSeed, mulberry32 } from '../../data/datasets/random.js';
import { Model } from '../../model/model.js';
import { HEAD, appendClassifierHead } from '../../model/train/loss.js';
import { Optimizer } from '../../model/train/optim.js';
import type { Graph } from '../../onnx/graph.js';
import { attr, makeNode, makeValueInfo, type NodeProto } from '../../onnx/proto.js';
import { addInputs, freshName, interpose } from '../../onnx/rewrite.js';
import { ONNX_DTYPE, tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { passiveHidden, RAUKER, type Taxonomy } from '../taxonomy.js';
import { inputName, resolveWeights, WeightEvaluator, weightShapes } from './pruning.js';

export interface WeightMaskOptions {
  /** The subtask: which labels belong to it (a predicate, or a list of classes). */
  readonly task: ((label: number) => boolean) | readonly number[];
  /** Initializers to mask (default: every float32 initializer of rank ≥ 2). */
  readonly weights?: readonly string[];
  /** Default 'l0'. */
  readonly penalty?: 'l1' | 'l0';
  /** Weight of the mask-size penalty (the mean over all mask entries; default 1). */
  readonly lambda?: number;
  /** Adam steps (default 300). */
  readonly steps?: number;
  /** Adam learning rate of the mask logits (default 0.05). */
  readonly lr?: number;
  /** Seed of the batch order, the L0 noise and the random-mask baseline (default 0). */
  readonly seed?: number;
  readonly batchSize?: number;
  /** Initial mask logit (default 3: every mask starts almost fully on). */
  readonly init?: number;
  /** Held-out examples to measure the binarised mask on (default: `data`, the examples it was learnt from). */
  readonly evaluate?: Dataset;
  /** Task accuracy the binarised mask may lose against the original model and still pass (default 0.02). */
  readonly tolerance?: number;
}

/** Accuracy and mean cross-entropy on a set of examples. */
export interface Score {
  readonly accuracy: number;
  readonly loss: number;
}

/** The original model, the masked one and a random mask keeping as many weights of each layer, on some examples. */
export interface Accuracies {
  readonly examples: number;
  readonly original: Score;
  readonly masked: Score;
  readonly random: Score;
}

export interface WeightMask {
  readonly method: 'weight-mask';
  readonly taxonomy: Taxonomy;
  readonly penalty: 'l1' | 'l0';
  /** The binarised mask of each weight (1: kept), in the weight's flat order. */
  readonly masks: ReadonlyMap<string, Uint8Array>;
  /** The learnt logits a of each weight. */
  readonly logits: ReadonlyMap<string, Float32Array>;
  readonly kept: readonly { readonly weight: string; readonly kept: number; readonly total: number; readonly fraction: number }[];
  /** Fraction of all masked weights dropped. */
  readonly sparsity: number;
  readonly task: Accuracies;
  /** On the examples outside the task (null when every example is in it). */
  readonly offTask: Accuracies | null;
  /** Every 10th step: the batch's cross-entropy and the expected kept fraction. */
  readonly history: readonly { readonly step: number; readonly loss: number; readonly expectedKept: number }[];
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

const BETA = 2 / 3;
const GAMMA = -0.1;
const ZETA = 1.1;
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The model's graph with W → W ⊙ gate(u_W) for each weight, u_W a new float32 input of W's shape; returns the input names. */
export function maskedGraph(graph: Graph, weights: ReadonlyMap<string, readonly number[]>, penalty: 'l1' | 'l0'): { graph: Graph; inputs: Map<string, string> } {
  let g = graph;
  const inputs = new Map<string, string>();
  for (const [w, shape] of weights) {
    const u = freshName(g, `${w}.mask_logits`);
    inputs.set(w, u);
    g = addInputs(g, [makeValueInfo(u, ONNX_DTYPE.float32, shape)]);
    g = interpose(g, w, (source) => {
      const nodes: NodeProto[] = [];
      const scope = `/${w}.mask`;
      const op = (type: string, ins: string[], suffix: string, attributes: ReturnType<typeof attr>[] = []) => {
        const out = `${scope}/${suffix}`;
        nodes.push(makeNode(type, ins, [out], { name: `${scope}/${suffix}`, attributes }));
        return out;
      };
      const k = (v: number, name: string) => op('Constant', [], name, [attr('value', { tensor: tensorToProto(Tensor.float32([v], [])) })]);
      let gate = op('Sigmoid', [u], 'Sigmoid');
      if (penalty === 'l0') {
        const stretched = op('Add', [op('Mul', [gate, k(ZETA - GAMMA, 'span')], 'Mul'), k(GAMMA, 'gamma')], 'Add');
        gate = op('Clip', [stretched, k(0, 'zero'), k(1, 'one')], 'Clip');
      }
      nodes.push(makeNode('Mul', [source, gate], [w], { name: `${scope}/Apply` }));
      return { nodes };
    });
  }
  return { graph: g, inputs };
}

function taskIndices(data: Dataset, task: WeightMaskOptions['task']): { on: Int32Array; off: Int32Array } {
  const labels = data.labels;
  if (!labels) throw new Error(`learnWeightMask: dataset ${data.name} has no class labels to select the task by`);
  let inTask: (y: number) => boolean;
  if (typeof task === 'function') inTask = task;
  else if (Array.isArray(task)) {
    if (task.length === 0) throw new Error('learnWeightMask: the task lists no classes');
    for (const c of task) if (!Number.isInteger(c) || c < 0) throw new Error(`learnWeightMask: task class ${c} is not a class label`);
    const set = new Set(task);
    inTask = (y) => set.has(y);
  } else throw new Error('learnWeightMask: task must be a predicate on labels or a list of classes');
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < labels.length; i++) (inTask(labels[i]) ? on : off).push(i);
  if (on.length === 0) throw new Error(`learnWeightMask: the task selects no example of dataset ${data.name}`);
  return { on: Int32Array.from(on), off: Int32Array.from(off) };
}

/** Learns a binary weight mask for a subtask (Csordás et al. 2021; L0 gates of Louizos et al. 2018), with checks. */
export async function learnWeightMask(model: Model, data: Dataset, options: WeightMaskOptions): Promise<WeightMask> {
  const started = performance.now();
  const penalty = options.penalty ?? 'l0';
  const lambda = options.lambda ?? 1;
  const steps = options.steps ?? 300;
  const lr = options.lr ?? 0.05;
  const seed = options.seed ?? 0;
  const batchSize = options.batchSize ?? 64;
  const init = options.init ?? 3;
  const tolerance = options.tolerance ?? 0.02;
  if (penalty !== 'l1' && penalty !== 'l0') throw new Error(`learnWeightMask: penalty must be 'l1' or 'l0', got '${String(penalty)}'`);
  if (!(lambda >= 0 && Number.isFinite(lambda))) throw new Error(`learnWeightMask: lambda must be a finite number ≥ 0, got ${lambda}`);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`learnWeightMask: steps must be a positive integer, got ${steps}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`learnWeightMask: batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isFinite(init)) throw new Error(`learnWeightMask: init must be finite, got ${init}`);
  const input = inputName(model, 'learnWeightMask');
  const { on } = taskIndices(data, options.task);
  const heldOut = options.evaluate ?? data;
  const split = taskIndices(heldOut, options.task);
  const weights = resolveWeights(model, options.weights, 'learnWeightMask');
  const shapes = weightShapes(model, weights.keys());

  const { graph, inputs } = maskedGraph(model.graph, shapes, penalty);
  const trainer = await Model.load(appendClassifierHead(graph, { reduction: 'mean' }).encode(), { runtime: model.runtime });
  const logits = new Map([...weights].map(([w, v]) => [w, new Float32Array(v.length).fill(init)]));
  const total = [...weights.values()].reduce((a, v) => a + v.length, 0);
  const optimizer = new Optimizer({ kind: 'adam', lr }, new Map([...logits].map(([w, a]) => [w, a.length])));
  const noise = mulberry32(mixSeed(seed, 1));
  // Expected size: P(gate ≠ 0) for L0, the gate itself for L1; both a sigmoid of a shifted logit.
  const shift = penalty === 'l0' ? -BETA * Math.log(-GAMMA / ZETA) : 0;
  const history: { step: number; loss: number; expectedKept: number }[] = [];
  const taskData = data.subset(on);
  try {
    for (let step = 0, epoch = 0; step < steps; epoch++) {
      for (const b of taskData.batches(batchSize, { shuffle: true, seed, epoch })) {
        if (step >= steps) break;
        const feeds: Record<string, Tensor> = { [input]: b.x, [HEAD.labels]: b.y };
        for (const [w, a] of logits) {
          const u = new Float32Array(a.length);
          for (let i = 0; i < a.length; i++) {
            if (penalty === 'l1') u[i] = a[i];
            else {
              const r = Math.min(1 - 1e-6, Math.max(1e-6, noise()));
              u[i] = (a[i] + Math.log(r) - Math.log(1 - r)) / BETA;
            }
          }
          feeds[inputs.get(w)!] = new Tensor('float32', u, shapes.get(w)!);
        }
        const { grads, outputs } = await trainer.grad(feeds, { of: HEAD.loss, wrt: [...inputs.values()], maxBatchBytes: Number.POSITIVE_INFINITY });
        const g = new Map<string, Float32Array>();
        let expected = 0;
        for (const [w, a] of logits) {
          const gu = grads[inputs.get(w)!].data as Float32Array;
          const ga = new Float32Array(a.length);
          for (let i = 0; i < a.length; i++) {
            const p = sigmoid(a[i] + shift);
            expected += p;
            ga[i] = (penalty === 'l0' ? gu[i] / BETA : gu[i]) + (lambda * p * (1 - p)) / total;
          }
          g.set(w, ga);
        }
        optimizer.step(logits, g);
        step++;
        if (step % 10 === 0 || step === steps) history.push({ step, loss: outputs[HEAD.loss].at(0), expectedKept: expected / total });
      }
    }
  } finally {
    await trainer.dispose();
  }

  const masks = new Map([...logits].map(([w, a]) => [w, Uint8Array.from(a, (x) => (x > 0 ? 1 : 0))]));
  const randomMasks = randomLike(masks, mixSeed(seed, 2));
  const apply = (m: ReadonlyMap<string, Uint8Array>) => new Map([...weights].map(([w, v]) => [w, Float32Array.from(v, (x, i) => x * m.get(w)![i])]));
  const evaluator = await WeightEvaluator.create(model, [...weights.keys()], 'learnWeightMask');
  const accuracies = async (ix: Int32Array): Promise<Accuracies> => {
    const d = heldOut.subset(ix);
    const acc = (w: ReadonlyMap<string, Float32Array>) => evaluator.evaluate(d, w, shapes, 256);
    return { examples: ix.length, original: await acc(weights), masked: await acc(apply(masks)), random: await acc(apply(randomMasks)) };
  };
  let task: Accuracies;
  let offTask: Accuracies | null;
  try {
    task = await accuracies(split.on);
    offTask = split.off.length ? await accuracies(split.off) : null;
  } finally {
    await evaluator.dispose();
  }

  const kept = [...masks].map(([weight, m]) => {
    const k = m.reduce((a, x) => a + x, 0);
    return { weight, kept: k, total: m.length, fraction: k / m.length };
  });
  const sparsity = 1 - kept.reduce((a, k) => a + k.kept, 0) / total;
  const checks: Check[] = [
    {
      name: 'task accuracy kept',
      value: task.masked.accuracy - task.original.accuracy,
      passed: task.masked.accuracy >= task.original.accuracy - tolerance,
      detail: `binarised mask ${task.masked.accuracy.toFixed(4)} vs original ${task.original.accuracy.toFixed(4)} on the ${task.examples} task examples (tolerance ${tolerance})`,
    },
    {
      name: 'beats a random mask',
      value: task.random.loss - task.masked.loss,
      passed: sparsity === 0 ? undefined : task.masked.loss <= task.random.loss && task.masked.accuracy >= task.random.accuracy,
      detail:
        `task loss of a random mask keeping as many weights per layer minus the learnt mask's (${task.random.loss.toFixed(4)} vs ${task.masked.loss.toFixed(4)}; ` +
        `accuracy ${task.random.accuracy.toFixed(4)} vs ${task.masked.accuracy.toFixed(4)}); the loss decides where a subset of classes makes accuracy easy`,
    },
    { name: 'sparsity', value: sparsity, detail: `fraction of the ${total} masked weights dropped` },
  ];
  if (offTask) {
    checks.push({
      name: 'specialisation',
      value: offTask.original.accuracy - offTask.masked.accuracy,
      detail: `off-task accuracy lost by the mask (${offTask.original.accuracy.toFixed(4)} → ${offTask.masked.accuracy.toFixed(4)}); near 0: the subnetwork serves the other classes too (no specialisation)`,
    });
  }
  return {
    method: 'weight-mask',
    taxonomy: passiveHidden('global', RAUKER.weightMasking),
    penalty,
    masks,
    logits,
    kept,
    sparsity,
    task,
    offTask,
    history,
    checks,
    params: { penalty, lambda, steps, lr, seed, batchSize, init, tolerance, taskExamples: on.length, evaluatedOn: heldOut.name, weights: [...weights.keys()] },
    ms: performance.now() - started,
  };
}

/** Masks keeping the same number of weights of each layer at seeded random positions. */
function randomLike(masks: ReadonlyMap<string, Uint8Array>, seed: number): Map<string, Uint8Array> {
  const rand = mulberry32(seed);
  return new Map(
    [...masks].map(([w, m]) => {
      const k = m.reduce((a, x) => a + x, 0);
      const order = Int32Array.from({ length: m.length }, (_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      const out = new Uint8Array(m.length);
      for (let i = 0; i < k; i++) out[order[i]] = 1;
      return [w, out];
    }),
  );
}
