/**
 * Sparsity during training (Räuker et al. 2023, §IV "sparsity": fewer weights and units make a subnetwork easier to
 * read), three ways, each a term for the trainer and each compared with its unregularised twin (twin.ts):
 *
 * - **L1** on the weight matrices and kernels, by its proximal step after every optimiser step (soft thresholding,
 *   w ← sign(w)·max(|w| − lr·λ, 0); Tibshirani 1996; proximal gradient as in Parikh & Boyd 2014), so weights reach
 *   exactly zero instead of hovering near it as under a subgradient.
 * - **Group lasso** (Wen, Wu, Wang, Chen, Li 2016, "Learning Structured Sparsity in Deep Neural Networks"): λ·Σ‖w_g‖₂
 *   over groups = the incoming weights and bias of one output unit (a dense neuron, a conv filter), by proximal group
 *   shrinkage w_g ← w_g·max(0, 1 − lr·λ/‖w_g‖₂): whole units die. The output layer is left alone (its units are the
 *   classes).
 * - **L0** (Louizos, Welling, Kingma 2018, "Learning Sparse Neural Networks through L0 Regularization"): a hard-concrete
 *   gate per hidden unit, the expected L0 norm Σ_j sigmoid(log α_j − β·log(−γ/ζ)) as a graph term; the
 *   inference model takes the deterministic gates min(1, max(0, sigmoid(log α)(ζ − γ) + γ)).
 *
 * Reported against the twin: the sparsity reached (exactly-zero weights, dead units), the accuracy, and the pruning
 * score of the hidden-semantics issue (weights/pruning.ts: the largest magnitude-pruned fraction that keeps accuracy).
 *
 * @example
 * const model = mlp({ inputs: [1, 28, 28], hidden: [64], classes: 10, seed: 1 });
 * const r = await trainSparse(model, 'l1', { strength: 0.05, train, test, epochs: 2, batchSize: 64, seed: 1 });
 * r.sparsity.zeroFraction; r.twinSparsity.zeroFraction; r.pruning.regularized; r.checks;
 */
import { mulberry32 } from '../../data/datasets/random.js';
import type { HostTerm, LossTerm } from '../../model/train/index.js';
import { Graph } from '../../onnx/graph.js';
import { attr, getAttr, makeNode, type ModelProto, type NodeProto, type TensorProto } from '../../onnx/proto.js';
import { interpose } from '../../onnx/rewrite.js';
import { tensorFromProto, tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { active, RAUKER_INTRINSIC, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { pruningCurve, type PruningCurve } from '../weights/pruning.js';
import { trainTwins, type Regularizer, type TrainedRun, type TwinOptions } from './twin.js';

/** One weight layer of a chain: its weight, bias and which axis of the weight indexes its output units. */
export interface WeightLayer {
  /** The node (`/fc1/Gemm`). */
  readonly node: string;
  readonly op: 'Gemm' | 'MatMul' | 'Conv';
  readonly weight: string;
  readonly bias?: string;
  readonly shape: readonly number[];
  /** Axis of the weight along which output units lie (0 for Gemm with transB and Conv, the last for MatMul). */
  readonly unitAxis: number;
  readonly units: number;
  /** The value carrying the layer's output (after its bias), where a gate goes. */
  readonly output: string;
  /** The last weight layer (its units are the logits). */
  readonly last: boolean;
}

/** Dense and conv layers whose weight is an initializer, in graph order. */
export function weightLayers(model: ModelProto | Graph): WeightLayer[] {
  const g = model instanceof Graph ? model : new Graph(model);
  const layers: WeightLayer[] = [];
  for (const n of g.nodes) {
    if (n.opType !== 'Gemm' && n.opType !== 'MatMul' && n.opType !== 'Conv') continue;
    const w = g.initializers.get(n.input[1]);
    if (!w) continue;
    const shape = w.dims.map(Number);
    let unitAxis = 0;
    if (n.opType === 'Gemm') unitAxis = Number(getAttr(n, 'transB')?.i ?? 0n) === 1 ? 0 : 1;
    if (n.opType === 'MatMul') unitAxis = shape.length - 1;
    let bias = n.opType !== 'MatMul' && n.input[2] && g.initializers.has(n.input[2]) ? n.input[2] : undefined;
    let output = n.output[0];
    const readers = g.consumers.get(output) ?? [];
    if (n.opType === 'MatMul' && readers.length === 1 && g.nodes[readers[0]].opType === 'Add') {
      const add = g.nodes[readers[0]];
      const b = add.input.find((v) => v !== output && g.initializers.has(v));
      if (b && g.initializers.get(b)!.dims.reduce((a, d) => a * Number(d), 1) === shape[unitAxis]) [bias, output] = [b, add.output[0]];
    }
    layers.push({ node: n.name, op: n.opType, weight: w.name, bias, shape, unitAxis, units: shape[unitAxis], output, last: false });
  }
  if (layers.length === 0) throw new Error('sparsity: the model has no Gemm, MatMul or Conv layer with an initializer weight');
  layers[layers.length - 1] = { ...layers[layers.length - 1], last: true };
  return layers;
}

/** Flat indices of unit u's weights in a weight of this layout. */
export function unitIndices(shape: readonly number[], unitAxis: number, u: number): Int32Array {
  const inner = shape.slice(unitAxis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, unitAxis).reduce((a, b) => a * b, 1);
  const n = shape[unitAxis];
  const out = new Int32Array(outer * inner);
  let k = 0;
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) out[k++] = (o * n + u) * inner + i;
  return out;
}

export interface StrengthOptions {
  /** λ, the weight of the penalty (> 0). */
  readonly strength: number;
}

function checkStrength(where: string, s: number): void {
  if (!(Number.isFinite(s) && s > 0)) throw new Error(`${where}: strength must be a positive number, got ${s}`);
}

/** L1 on every weight matrix and kernel (not biases), as a proximal soft-threshold after each step. */
export function l1Regularizer(model: ModelProto, options: StrengthOptions & { weights?: readonly string[] }): Regularizer {
  const { strength } = options;
  checkStrength('l1Regularizer', strength);
  const names = options.weights ?? weightLayers(model).map((l) => l.weight);
  const known = new Set(model.graph!.initializer.map((t) => t.name));
  for (const n of names) if (!known.has(n)) throw new Error(`l1Regularizer: the model has no weight '${n}'`);
  const term: HostTerm = {
    name: 'l1',
    penalty(ws) {
      let s = 0;
      for (const n of names) for (const v of ws.get(n)!) s += Math.abs(v);
      return strength * s;
    },
    afterStep(ws, _grads, lr) {
      const t = lr * strength;
      for (const n of names) {
        const w = ws.get(n)!;
        for (let i = 0; i < w.length; i++) w[i] = w[i] > t ? w[i] - t : w[i] < -t ? w[i] + t : 0;
      }
    },
  };
  return { hostTerms: [term] };
}

/** The groups of Wen et al.: each hidden unit's incoming weights with its bias. */
function unitGroups(layers: readonly WeightLayer[]): { layer: WeightLayer; unit: number; indices: Int32Array }[] {
  return layers.flatMap((layer) => Array.from({ length: layer.units }, (_, unit) => ({ layer, unit, indices: unitIndices(layer.shape, layer.unitAxis, unit) })));
}

/** Group lasso over the hidden units (Wen et al. 2016), by proximal group shrinkage after each step. */
export function groupLassoRegularizer(model: ModelProto, options: StrengthOptions): Regularizer {
  const { strength } = options;
  checkStrength('groupLassoRegularizer', strength);
  const layers = weightLayers(model).filter((l) => !l.last);
  if (layers.length === 0) throw new Error('groupLassoRegularizer: the model has no hidden layer (only the output layer, whose units are classes)');
  const groups = unitGroups(layers);
  const norm = (ws: ReadonlyMap<string, Float32Array>, g: (typeof groups)[number]) => {
    const w = ws.get(g.layer.weight)!;
    let s = 0;
    for (const i of g.indices) s += w[i] * w[i];
    if (g.layer.bias) s += ws.get(g.layer.bias)![g.unit] ** 2;
    return Math.sqrt(s);
  };
  const term: HostTerm = {
    name: 'group-lasso',
    penalty: (ws) => strength * groups.reduce((a, g) => a + norm(ws, g), 0),
    afterStep(ws, _grads, lr) {
      for (const g of groups) {
        const n = norm(ws, g);
        const scale = n > lr * strength ? 1 - (lr * strength) / n : 0;
        const w = ws.get(g.layer.weight)!;
        for (const i of g.indices) w[i] = scale === 0 ? 0 : w[i] * scale; // a dead group holds +0, not −0
        if (g.layer.bias) ws.get(g.layer.bias)![g.unit] = scale === 0 ? 0 : ws.get(g.layer.bias)![g.unit] * scale;
      }
    },
  };
  return { hostTerms: [term] };
}

/** The hard-concrete stretch and temperature of Louizos et al. (their defaults): β = 2/3, (γ, ζ) = (−0.1, 1.1). */
export const HARD_CONCRETE = { beta: 2 / 3, gamma: -0.1, zeta: 1.1 } as const;
const { beta: BETA, gamma: GAMMA, zeta: ZETA } = HARD_CONCRETE;
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** E‖z‖₀ = Σ_j P(z_j ≠ 0) = Σ_j sigmoid(log α_j − β·log(−γ/ζ)) (Louizos et al. eq. 12). */
export function expectedL0(logAlpha: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < logAlpha.length; i++) s += sigmoid(logAlpha[i] - BETA * Math.log(-GAMMA / ZETA));
  return s;
}

/** One hard-concrete sample from u ∈ (0, 1): min(1, max(0, sigmoid((log u − log(1 − u) + log α)/β)(ζ − γ) + γ)). */
export function hardConcreteGate(logAlpha: number, u: number): number {
  const s = sigmoid((Math.log(u) - Math.log(1 - u) + logAlpha) / BETA);
  return Math.min(1, Math.max(0, s * (ZETA - GAMMA) + GAMMA));
}

/** The test-time gates min(1, max(0, sigmoid(log α)(ζ − γ) + γ)); 0 where a unit is pruned. */
export function deterministicGates(logAlpha: ArrayLike<number>): Float32Array {
  return Float32Array.from(logAlpha, (a) => Math.min(1, Math.max(0, sigmoid(a) * (ZETA - GAMMA) + GAMMA)));
}

/** The initializers of the gate on a layer's units: `fc1.l0.log_alpha`, `fc1.l0.noise`. */
export function gateNames(weight: string): { logAlpha: string; noise: string } {
  const prefix = weight.replace(/\.weight$/, '');
  return { logAlpha: `${prefix}.l0.log_alpha`, noise: `${prefix}.l0.noise` };
}

export interface L0Options extends StrengthOptions {
  /** Seed of the initial log α jitter and of the gate noise (default 0). */
  readonly seed?: number;
  /** Initial probability of a gate being off, which sets log α = log((1 − p)/p) (default 0.2). */
  readonly droprateInit?: number;
}

/**
 * The model with a hard-concrete gate on every hidden layer's units, multiplying the layer's output (before its
 * activation: for ReLU the same as after, since z ≥ 0). 'sample': z from the noise initializer u (resampled by a host
 * term after every step: one draw per unit per minibatch); 'deterministic': the test-time gate.
 */
function withGates(model: ModelProto, mode: 'sample' | 'deterministic', logAlphas: ReadonlyMap<string, Float32Array>, noise?: ReadonlyMap<string, Float32Array>): ModelProto {
  let g = new Graph(model);
  for (const l of weightLayers(g).filter((x) => !x.last)) {
    const names = gateNames(l.weight);
    const scope = `/${names.logAlpha.replace(/\.log_alpha$/, '').replace(/\./g, '/')}`;
    g = interpose(g, l.output, (source) => {
      const nodes: NodeProto[] = [];
      let k = 0;
      const op = (type: string, inputs: string[], attributes = [] as ReturnType<typeof attr>[], output?: string) => {
        const name = `${scope}/${type}_${k++}`;
        nodes.push(makeNode(type, inputs, [output ?? `${name}_output_0`], { name, attributes }));
        return output ?? `${name}_output_0`;
      };
      const constant = (t: Tensor) => op('Constant', [], [attr('value', { tensor: tensorToProto(t) })]);
      const scalar = (v: number) => constant(Tensor.float32([v], []));
      const initializers: TensorProto[] = [tensorToProto(Tensor.float32(logAlphas.get(names.logAlpha)!, [l.units]), names.logAlpha)];
      let s: string;
      if (mode === 'sample') {
        initializers.push(tensorToProto(Tensor.float32(noise!.get(names.noise)!, [l.units]), names.noise));
        const logistic = op('Sub', [op('Log', [names.noise]), op('Log', [op('Sub', [scalar(1), names.noise])])]);
        s = op('Sigmoid', [op('Div', [op('Add', [logistic, names.logAlpha]), scalar(BETA)])]);
      } else {
        s = op('Sigmoid', [names.logAlpha]);
      }
      let z = op('Clip', [op('Add', [op('Mul', [s, scalar(ZETA - GAMMA)]), scalar(GAMMA)]), scalar(0), scalar(1)]);
      if (l.op === 'Conv') z = op('Reshape', [z, constant(Tensor.int64([l.units, 1, 1]))]); // [C, 1, 1] against [N, C, H, W]
      op('Mul', [source, z], [], l.output);
      return { nodes, initializers };
    });
  }
  return g.model;
}

/**
 * L0 regularisation by hard-concrete gates on the hidden units (Louizos et al. 2018): the gated model to train, the
 * expected-L0 graph term, a host term that redraws the gate noise after each step, and `finish`, which makes the
 * trained gates deterministic.
 */
export function l0Regularizer(model: ModelProto, options: L0Options): Regularizer {
  const { strength, seed = 0, droprateInit = 0.2 } = options;
  checkStrength('l0Regularizer', strength);
  if (!(droprateInit > 0 && droprateInit < 1)) throw new Error(`l0Regularizer: droprateInit must be in (0, 1), got ${droprateInit}`);
  const layers = weightLayers(model).filter((l) => !l.last);
  if (layers.length === 0) throw new Error('l0Regularizer: the model has no hidden layer to gate');
  const rand = mulberry32(seed);
  const draw = () => 1e-6 + (1 - 2e-6) * rand();
  const init = Math.log((1 - droprateInit) / droprateInit);
  const logAlphas = new Map(layers.map((l) => [gateNames(l.weight).logAlpha, Float32Array.from({ length: l.units }, () => init + 0.01 * (2 * rand() - 1))]));
  const noise = new Map(layers.map((l) => [gateNames(l.weight).noise, Float32Array.from({ length: l.units }, draw)]));
  const shift = BETA * Math.log(-GAMMA / ZETA);
  const term: LossTerm = {
    name: 'l0',
    weight: strength,
    build: (b) => {
      const parts = [...logAlphas.keys()].map((a) => b.op('ReduceSum', [b.op('Sigmoid', [b.op('Sub', [a, b.constant(Tensor.float32([shift], []))])])], [attr('keepdims', { int: 0 })]));
      return parts.length === 1 ? parts[0] : b.op('Sum', parts);
    },
  };
  const resample: HostTerm = {
    name: 'l0-noise',
    afterStep(ws) {
      for (const n of noise.keys()) {
        const u = ws.get(n)!;
        for (let i = 0; i < u.length; i++) u[i] = draw();
      }
    },
  };
  return {
    model: withGates(model, 'sample', logAlphas, noise),
    terms: [term],
    hostTerms: [resample],
    finish: (trained) => {
      const values = new Map(trained.graph!.initializer.map((t) => [t.name, t]));
      const base = { ...model, graph: { ...model.graph!, initializer: model.graph!.initializer.map((t) => values.get(t.name) ?? t) } };
      const trainedAlphas = new Map([...logAlphas.keys()].map((a) => [a, tensorFromProto(values.get(a)!).data as Float32Array]));
      return withGates(base, 'deterministic', trainedAlphas);
    },
  };
}

/** How sparse a model is: exact zeros among its layer weights, and hidden units that are dead. */
export interface SparsityStats {
  readonly zeroWeights: number;
  readonly weights: number;
  readonly zeroFraction: number;
  /** Hidden units whose incoming weights and bias are all exactly zero, or whose deterministic L0 gate is 0. */
  readonly deadUnits: number;
  readonly hiddenUnits: number;
  readonly deadFraction: number;
  readonly perLayer: readonly { readonly weight: string; readonly zeroFraction: number; readonly deadUnits: number; readonly units: number }[];
}

/** Counts exact zeros and dead hidden units of a (trained, inference) model. */
export function sparsityOf(model: ModelProto): SparsityStats {
  const g = new Graph(model);
  const layers = weightLayers(g);
  const value = (n: string) => tensorFromProto(g.initializers.get(n)!).data as Float32Array;
  const perLayer = layers.map((l) => {
    const w = value(l.weight);
    const b = l.bias ? value(l.bias) : undefined;
    const gate = g.initializers.has(gateNames(l.weight).logAlpha) ? deterministicGates(value(gateNames(l.weight).logAlpha)) : undefined;
    let dead = 0;
    if (!l.last) {
      for (let u = 0; u < l.units; u++) {
        const silent = unitIndices(l.shape, l.unitAxis, u).every((i) => w[i] === 0) && (!b || b[u] === 0);
        if (silent || (gate && gate[u] === 0)) dead++;
      }
    }
    return { weight: l.weight, zeros: w.reduce((a, v) => a + (v === 0 ? 1 : 0), 0), size: w.length, dead, units: l.units, last: l.last };
  });
  const zeroWeights = perLayer.reduce((a, l) => a + l.zeros, 0);
  const weights = perLayer.reduce((a, l) => a + l.size, 0);
  const hidden = perLayer.filter((l) => !l.last);
  const deadUnits = hidden.reduce((a, l) => a + l.dead, 0);
  const hiddenUnits = hidden.reduce((a, l) => a + l.units, 0);
  return {
    zeroWeights,
    weights,
    zeroFraction: zeroWeights / weights,
    deadUnits,
    hiddenUnits,
    deadFraction: hiddenUnits ? deadUnits / hiddenUnits : 0,
    perLayer: perLayer.map((l) => ({ weight: l.weight, zeroFraction: l.zeros / l.size, deadUnits: l.dead, units: l.units })),
  };
}

export type SparsityMethod = 'l1' | 'group-lasso' | 'l0';

/** The regulariser of each method, as `glassbox train --regularize l1|group-lasso|l0 --strength λ` builds it. */
export function sparsityRegularizer(model: ModelProto, method: SparsityMethod, options: StrengthOptions & Omit<L0Options, 'strength'>): Regularizer {
  if (method === 'l1') return l1Regularizer(model, options);
  if (method === 'group-lasso') return groupLassoRegularizer(model, options);
  if (method === 'l0') return l0Regularizer(model, options);
  throw new Error(`sparsity: unknown method '${String(method)}'; expected 'l1', 'group-lasso' or 'l0'`);
}

export interface SparseTrainingOptions extends TwinOptions, StrengthOptions, Omit<L0Options, 'strength' | 'seed'> {
  /** Sparsities of the pruning curves (default 0, 0.1, …, 0.9, 0.95, 0.99). */
  readonly sparsities?: readonly number[];
  /** Accuracy the pruned model may lose (default 0.01). */
  readonly tolerance?: number;
}

export interface SparsityResult {
  readonly method: SparsityMethod;
  readonly taxonomy: Taxonomy;
  readonly strength: number;
  readonly regularized: TrainedRun;
  readonly twin: TrainedRun;
  readonly sparsity: SparsityStats;
  readonly twinSparsity: SparsityStats;
  /** The largest magnitude-pruned fraction within tolerance of each model's own accuracy, and the curves. */
  readonly pruning: { readonly regularized: number; readonly twin: number; readonly curves: { readonly regularized: PruningCurve; readonly twin: PruningCurve } };
  readonly checks: readonly Check[];
  readonly ms: number;
}

const SPARSITY_TAXONOMY = active('hidden semantics', 'global', RAUKER_INTRINSIC.sparsity);

/** Trains with one sparsity regulariser and its twin, and measures sparsity, accuracy and pruning robustness of both. */
export async function trainSparse(model: ModelProto, method: SparsityMethod, options: SparseTrainingOptions): Promise<SparsityResult> {
  const t0 = performance.now();
  const reg = sparsityRegularizer(model, method, options);
  const twins = await trainTwins(model, reg, options);
  const { regularized, twin } = twins;
  const sparsity = sparsityOf(regularized.proto);
  const twinSparsity = sparsityOf(twin.proto);
  const prune = (m: TrainedRun) => pruningCurve(m.model, options.test, { criterion: 'magnitude', sparsities: options.sparsities, tolerance: options.tolerance, randomSeed: null, weights: weightLayers(m.proto).map((l) => l.weight) });
  const curves = { regularized: await prune(regularized), twin: await prune(twin) };
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return {
    method,
    taxonomy: SPARSITY_TAXONOMY,
    strength: options.strength,
    regularized,
    twin,
    sparsity,
    twinSparsity,
    pruning: { regularized: curves.regularized.frivolous, twin: curves.twin.frivolous, curves },
    checks: [
      ...twins.checks,
      {
        name: 'sparsity gain',
        value: sparsity.zeroFraction - twinSparsity.zeroFraction,
        passed: sparsity.zeroFraction > twinSparsity.zeroFraction || sparsity.deadFraction > twinSparsity.deadFraction,
        detail: `${pct(sparsity.zeroFraction)} of the weights exactly zero and ${sparsity.deadUnits}/${sparsity.hiddenUnits} hidden units dead, vs ${pct(twinSparsity.zeroFraction)} and ${twinSparsity.deadUnits}/${twinSparsity.hiddenUnits} for the twin`,
      },
      {
        name: 'pruning robustness',
        value: curves.regularized.frivolous - curves.twin.frivolous,
        passed: curves.regularized.frivolous >= curves.twin.frivolous,
        detail: `magnitude pruning keeps accuracy within ${pct(options.tolerance ?? 0.01)} up to ${pct(curves.regularized.frivolous)} of the weights pruned vs ${pct(curves.twin.frivolous)} for the twin`,
      },
    ],
    ms: performance.now() - t0,
  };
}

const SPARSITY_INFO = (title: string, reference: string, stochastic = false): MethodInfo => ({ title, reference, taxonomy: SPARSITY_TAXONOMY, ...(stochastic ? { stochastic } : {}) });

export const SPARSITY_METHODS = {
  l1: {
    info: SPARSITY_INFO('L1 weight sparsity by proximal soft-thresholding, against the unregularised twin', 'Tibshirani 1996, Regression shrinkage and selection via the lasso'),
    run: (model: ModelProto, options: SparseTrainingOptions) => trainSparse(model, 'l1', options),
  },
  'group-lasso': {
    info: SPARSITY_INFO('Group lasso over units and filters, against the unregularised twin', 'Wen et al. 2016, Learning structured sparsity in deep neural networks'),
    run: (model: ModelProto, options: SparseTrainingOptions) => trainSparse(model, 'group-lasso', options),
  },
  l0: {
    info: SPARSITY_INFO('L0 hard-concrete unit gates, against the unregularised twin', 'Louizos et al. 2018, Learning sparse neural networks through L0 regularization', true),
    run: (model: ModelProto, options: SparseTrainingOptions) => trainSparse(model, 'l0', options),
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;

