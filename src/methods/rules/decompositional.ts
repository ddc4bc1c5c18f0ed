/**
 * What KT and M-of-N share (Zhang et al. 2021 §III-A, decompositional rule extraction): reading a small MLP's weights
 * from its ONNX graph, abstracting every unit as a threshold unit over the booleans of the layer below (Fu 1994), the
 * pruned search for the minimal antecedent sets that switch a unit on or off, and the rule network that composes the
 * units' rules into rules on the inputs for each class, with its fidelity to the network.
 *
 * A unit j of a layer whose inputs v_i take a low or a high level (0/1 for boolean inputs; for hidden units 0/1 under
 * `levels: 'binary'`, or their mean activation when off / on under `'observed'`) is on when
 * base + Σ gain_i·[v_i high] > 0, with base = b + Σ w_i·lo_i and gain_i = w_i·(hi_i − lo_i).
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import { Graph } from '../../onnx/graph.js';
import { decodeModel, encodeModel, getAttr, type ModelProto } from '../../onnx/proto.js';
import { tensorFromProto } from '../../onnx/tensor-proto.js';
import { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import { truthTable, type Rule } from './boolean.js';

export type Activation = 'sigmoid' | 'relu' | 'tanh';

/** One dense layer: y = act(W x + b), W [out, in] row-major. */
export interface DenseLayer {
  readonly name: string;
  readonly inSize: number;
  readonly outSize: number;
  readonly w: Float64Array;
  readonly b: Float64Array;
  readonly activation: Activation | 'none';
}

/** A chain of dense layers from one input to one output; `final` is a monotone activation on the logits. */
export interface Mlp {
  readonly input: string;
  /** The input's shape without the batch axis (flattened to `inputSize` features). */
  readonly inputShape: readonly number[];
  readonly inputSize: number;
  readonly output: string;
  readonly layers: readonly DenseLayer[];
  readonly final: 'none' | 'sigmoid' | 'softmax' | 'tanh';
}

const HIDDEN: Record<string, Activation> = { Sigmoid: 'sigmoid', Relu: 'relu', Tanh: 'tanh' };

/**
 * The dense layers of an MLP graph: an optional Flatten, then Gemm (or MatMul + Add) layers with Sigmoid, Relu or
 * Tanh between them, and optionally Sigmoid or Softmax at the end. Anything else is an error naming the node.
 */
export function readMlp(model: ModelProto | Uint8Array, who: string): Mlp {
  const g = new Graph(model instanceof Uint8Array ? decodeModel(model, who) : model);
  const inputs = g.inputs;
  if (inputs.length !== 1) throw new Error(`${who}: an MLP reads one input, this graph reads ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
  const outputs = new Set(g.outputs.map((o) => o.name));
  if (outputs.size !== 1) throw new Error(`${who}: an MLP writes one output, this graph writes ${outputs.size}`);
  const input = inputs[0].name;
  const inputShape = (inputs[0].shape ?? []).slice(1).map(Number);
  if (inputShape.length === 0 || inputShape.some((d) => !(d > 0))) throw new Error(`${who}: input '${input}' needs a fixed shape [N, features], got [${(inputs[0].shape ?? []).join(', ')}]`);
  const inputSize = inputShape.reduce((a, b) => a * b, 1);
  const weight = (name: string, node: string): Float64Array => {
    const t = g.initializers.get(name);
    if (!t) throw new Error(`${who}: node ${node} reads '${name}', which is not a weight (initializer); decompositional rules need constant weights`);
    return Float64Array.from(tensorFromProto(t).data as Float32Array);
  };
  const layers: DenseLayer[] = [];
  let final: Mlp['final'] = 'none';
  let v = input;
  let width = inputSize;
  while (!outputs.has(v)) {
    const readers = g.consumers.get(v) ?? [];
    if (readers.length !== 1) throw new Error(`${who}: '${v}' is read by ${readers.length} nodes; an MLP is a chain of layers`);
    const node = g.nodes[readers[0]];
    const at = `${node.opType} node '${node.name}'`;
    const last = layers[layers.length - 1];
    if (node.opType === 'Flatten' && layers.length === 0 && (getAttr(node, 'axis')?.i ?? 1n) === 1n) {
      v = node.output[0];
    } else if (node.opType === 'Gemm' || node.opType === 'MatMul') {
      if (last && last.activation === 'none') throw new Error(`${who}: ${at} follows layer '${last.name}' without an activation; rules need threshold units`);
      const gemm = node.opType === 'Gemm';
      for (const a of ['transA', 'alpha', 'beta']) {
        const x = getAttr(node, a);
        if (x && (a === 'transA' ? x.i !== 0n : x.f !== 1)) throw new Error(`${who}: ${at} has ${a} ≠ default; only plain x·Wᵀ + b layers are read`);
      }
      const wName = node.input[1];
      const dims = (g.initializers.get(wName)?.dims ?? []).map(Number);
      const w = weight(wName, node.name);
      const transB = gemm && getAttr(node, 'transB')?.i === 1n;
      const [out, inn] = transB ? dims : [dims[1], dims[0]];
      if (dims.length !== 2 || inn !== width) throw new Error(`${who}: ${at} weight '${wName}' has shape [${dims.join(', ')}], expected ${width} inputs`);
      const wOut: Float64Array = transB ? w : transpose(w, inn, out);
      let b: Float64Array = new Float64Array(out);
      v = node.output[0];
      const biasName = gemm ? node.input[2] : undefined;
      if (biasName) b = weight(biasName, node.name);
      const add = !gemm ? g.consumers.get(v) ?? [] : [];
      if (add.length === 1 && g.nodes[add[0]].opType === 'Add') {
        const other = g.nodes[add[0]].input.find((n) => n !== v) ?? '';
        b = weight(other, g.nodes[add[0]].name);
        v = g.nodes[add[0]].output[0];
      }
      if (b.length !== out) throw new Error(`${who}: bias of ${at} has ${b.length} values for ${out} units`);
      const name = wName.replace(/\.weight$/, '');
      layers.push({ name, inSize: inn, outSize: out, w: wOut, b, activation: 'none' });
      width = out;
    } else if (node.opType in HIDDEN && last && last.activation === 'none' && final === 'none') {
      layers[layers.length - 1] = { ...last, activation: HIDDEN[node.opType] };
      v = node.output[0];
    } else if (node.opType === 'Softmax' && last && last.activation === 'none' && outputs.has(node.output[0])) {
      final = 'softmax';
      v = node.output[0];
    } else {
      throw new Error(
        `${who}: unsupported ${at} after '${v}'; decompositional rules read MLPs only: Gemm or MatMul+Add layers with Sigmoid, Relu or Tanh`,
      );
    }
  }
  if (layers.length === 0) throw new Error(`${who}: the graph has no dense layer`);
  const top = layers[layers.length - 1];
  if (top.activation === 'relu') throw new Error(`${who}: the output layer '${top.name}' ends in Relu; class rules need logits, Sigmoid or Softmax`);
  if (top.activation !== 'none') {
    final = top.activation;
    layers[layers.length - 1] = { ...top, activation: 'none' };
  }
  return { input, inputShape, inputSize, output: [...outputs][0], layers, final };
}

function transpose(w: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(w.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = w[i * cols + j];
  return out;
}

/** Boolean inputs to evaluate on: rows × n, 0/1. */
export interface EvalSet {
  readonly x: Float32Array;
  readonly rows: number;
  readonly source: string;
  /** The full truth table: fidelity on it is exact. */
  readonly exact: boolean;
  readonly labels?: Int32Array;
}

/** The given data (checked to be 0/1 with n features), or the truth table when n ≤ maxExact, or seeded random rows. */
export function evaluationSet(who: string, n: number, o: { data?: Dataset<'float32'>; maxExact: number; samples: number; seed: number }): EvalSet {
  if (o.data) {
    const d = o.data;
    const f = d.inputShape.reduce((a, b) => a * b, 1);
    if (f !== n) throw new Error(`${who}: data '${d.name}' has ${f} features, the network reads ${n}`);
    const x = new Float32Array(d.size * n);
    const labels = new Int32Array(d.size);
    let row = 0;
    for (const b of d.batches(1024)) {
      for (let k = 0; k < b.x.size; k++) {
        const val = b.x.data[k];
        if (val !== 0 && val !== 1) throw new Error(`${who}: data '${d.name}' row ${row + Math.floor(k / n)} feature ${k % n} is ${val}; inputs must be 0 or 1 (binarize them first)`);
      }
      x.set(b.x.data as Float32Array, row * n);
      b.y.data.forEach((y, k) => (labels[row + k] = Number(y)));
      row += b.indices.length;
    }
    return { x, rows: d.size, source: d.name, exact: false, labels };
  }
  if (n <= o.maxExact) return { x: truthTable(n), rows: 2 ** n, source: `truth table of ${n} inputs`, exact: true };
  if (!Number.isInteger(o.samples) || o.samples < 1) throw new Error(`${who}: samples must be a positive integer, got ${o.samples}`);
  const rand = mulberry32(o.seed);
  const x = Float32Array.from({ length: o.samples * n }, () => (rand() < 0.5 ? 0 : 1));
  return { x, rows: o.samples, source: `${o.samples} random boolean inputs (seed ${o.seed})`, exact: false };
}

/** Pre-activations of every layer (float64, rows × width each) computed from the read weights. */
export function forward(mlp: Mlp, x: Float32Array, rows: number): Float64Array[] {
  const pres: Float64Array[] = [];
  let h: ArrayLike<number> = x;
  for (const l of mlp.layers) {
    const pre = new Float64Array(rows * l.outSize);
    const act = new Float64Array(rows * l.outSize);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < l.outSize; j++) {
        let s = l.b[j];
        for (let i = 0; i < l.inSize; i++) s += l.w[j * l.inSize + i] * h[r * l.inSize + i];
        pre[r * l.outSize + j] = s;
        act[r * l.outSize + j] = activate(l.activation, s);
      }
    }
    pres.push(pre);
    h = act;
  }
  return pres;
}

export function activate(a: Activation | 'none', s: number): number {
  return a === 'sigmoid' ? 1 / (1 + Math.exp(-s)) : a === 'relu' ? Math.max(0, s) : a === 'tanh' ? Math.tanh(s) : s;
}

/** The network's class for every row, run in ONNX Runtime, and its outputs (rows × classes). */
export async function networkClasses(model: ModelProto | Uint8Array, mlp: Mlp, set: EvalSet): Promise<{ classes: Int32Array; outputs: Float32Array }> {
  const m = await Model.load(model instanceof Uint8Array ? model : encodeModel(model));
  try {
    const out = (await m.run({ [mlp.input]: new Tensor('float32', set.x, [set.rows, ...mlp.inputShape]) })).outputs[mlp.output];
    const c = out.size / set.rows;
    const data = out.data as Float32Array;
    const threshold = mlp.final === 'sigmoid' ? 0.5 : 0;
    const classes = Int32Array.from({ length: set.rows }, (_, r) => {
      if (c === 1) return data[r] > threshold ? 1 : 0;
      let best = 0;
      for (let k = 1; k < c; k++) if (data[r * c + k] > data[r * c + best]) best = k;
      return best;
    });
    return { classes, outputs: data };
  } finally {
    await m.dispose();
  }
}

/** A threshold unit over booleans: on when base + Σ gains[i]·[v_i] > 0. */
export interface BoolUnit {
  readonly name: string;
  readonly base: number;
  readonly gains: Float64Array;
}

/** Weights grouped for the search: each group's members share one signed gain (KT: singletons). */
export interface Grouping {
  readonly base: number;
  readonly groups: readonly { readonly gain: number; readonly members: readonly number[] }[];
}

/** A unit's rules: when it is on, when it is off, and what the search for them cost. */
export interface UnitRules {
  readonly on: Rule[];
  readonly off: Rule[];
  /** Antecedent sets (or count vectors) examined by the pruned search, both polarities. */
  readonly examined: number;
  /** 2 · 2^n: every subset of the n inputs with a non-zero weight, for both polarities. */
  readonly exhaustive: number;
}

export interface SearchLimits {
  readonly who: string;
  readonly unit: string;
  /** Most rules per unit and polarity before the search stops with an error. */
  readonly maxRules: number;
  /** Most antecedents per rule (rules beyond are not searched: the rule set may then be incomplete). */
  readonly maxLiterals: number;
}

/**
 * All minimal count vectors k (0 ≤ k_c ≤ sizes[c]) with Σ gains[c]·k_c above `threshold` (strictly, or ≥), for
 * gains sorted in decreasing order (Fu 1994's subset search when every size is 1). A vector that reaches the threshold
 * is not expanded (its supersets are not minimal); a branch that cannot reach it with every remaining weight is cut.
 */
export function minimalCounts(gains: readonly number[], sizes: readonly number[], threshold: number, strict: boolean, lim: SearchLimits): { vectors: number[][]; examined: number } {
  const sat = (s: number) => (strict ? s > threshold : s >= threshold);
  const g = gains.length;
  for (let c = 1; c < g; c++) if (gains[c] > gains[c - 1] || !(gains[c] > 0)) throw new Error(`minimalCounts: gains must be positive and decreasing`);
  const cap = new Float64Array(g + 1);
  for (let c = g - 1; c >= 0; c--) cap[c] = cap[c + 1] + sizes[c] * gains[c];
  const vectors: number[][] = [];
  const k = new Array<number>(g).fill(0);
  let examined = 1;
  if (sat(0)) return { vectors: [k.slice()], examined };
  const dfs = (start: number, sum: number, literals: number): void => {
    for (let j = start; j < g; j++) {
      if (k[j] >= sizes[j]) continue;
      if (!sat(sum + (sizes[j] - k[j]) * gains[j] + cap[j + 1]) || literals >= lim.maxLiterals) break; // bounds only shrink for later j
      k[j]++;
      examined++;
      const s = sum + gains[j];
      if (sat(s)) {
        vectors.push(k.slice());
        if (vectors.length > lim.maxRules) throw new Error(`${lim.who}: unit ${lim.unit} has more than ${lim.maxRules} rules (maxRules); raise it or limit maxLiterals`);
      } else dfs(j, s, literals + 1);
      k[j]--;
    }
  };
  dfs(0, 0, 0);
  return { vectors, examined };
}

/** On- and off-rules of a grouped unit, by two pruned searches. */
export function unitRules(grouping: Grouping, fanIn: number, lim: SearchLimits): UnitRules {
  const groups = grouping.groups.filter((gr) => gr.gain !== 0 && gr.members.length > 0).sort((a, b) => Math.abs(b.gain) - Math.abs(a.gain));
  // Negative groups count their members that are off: μ·#on = μ·|S| + |μ|·#off.
  let base = grouping.base;
  for (const gr of groups) if (gr.gain < 0) base += gr.gain * gr.members.length;
  const gains = groups.map((gr) => Math.abs(gr.gain));
  const sizes = groups.map((gr) => gr.members.length);
  const total = gains.reduce((s, x, c) => s + x * sizes[c], 0);
  const toRules = (vectors: number[][], polarity: boolean): Rule[] =>
    vectors.map((kv) =>
      kv.flatMap((m, c) => (m === 0 ? [] : [{ m, literals: groups[c].members.map((v) => ({ v, on: (groups[c].gain > 0) === polarity })) }])),
    );
  const on = minimalCounts(gains, sizes, -base, true, lim);
  const off = minimalCounts(gains, sizes, base + total, false, lim);
  return { on: toRules(on.vectors, true), off: toRules(off.vectors, false), examined: on.examined + off.examined, exhaustive: 2 * 2 ** fanIn };
}

/** Low and high levels of each unit of a hidden layer: 0/1 (tanh −1/1), or mean activation when off / on. */
export function unitLevels(layer: DenseLayer, pre: Float64Array, rows: number, levels: 'observed' | 'binary', who: string): { lo: Float64Array; hi: Float64Array } {
  const n = layer.outSize;
  const lo = new Float64Array(n);
  const hi = new Float64Array(n);
  if (levels === 'binary') {
    if (layer.activation === 'relu') throw new Error(`${who}: layer '${layer.name}' is ReLU, which has no fixed on-level; use levels 'observed'`);
    lo.fill(layer.activation === 'tanh' ? -1 : 0);
    hi.fill(1);
    return { lo, hi };
  }
  for (let j = 0; j < n; j++) {
    let sOn = 0, nOn = 0, sOff = 0, nOff = 0;
    for (let r = 0; r < rows; r++) {
      const s = pre[r * n + j];
      const a = activate(layer.activation, s);
      if (s > 0) {
        sOn += a;
        nOn++;
      } else {
        sOff += a;
        nOff++;
      }
    }
    lo[j] = nOff > 0 ? sOff / nOff : activate(layer.activation, 0);
    hi[j] = nOn > 0 ? sOn / nOn : lo[j];
  }
  return { lo, hi };
}
