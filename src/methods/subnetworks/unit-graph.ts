/**
 * The unit graph of a layered network, read from its weights alone (Filan, Casper, Hod, Wild, Critch, Russell 2021,
 * "Clusterability in Neural Networks"): one node per unit — a neuron of a dense layer, a channel of a convolution —
 * and an undirected edge between units of consecutive layers weighted by the connection's strength: |W_ij| for a
 * dense layer, and for a convolution the L1 norm of the kernel slice W[o, i, :, :] that joins input channel i to
 * output channel o (Filan et al.'s choice for CNNs; `norm: 'fro'` takes the Frobenius norm instead). A dense layer
 * after a flattened convolution is read the same way: its input features are grouped by the channel they came from
 * (NCHW flattening is channel-major) and the edge is the norm of that group's weights.
 *
 * Only chains are read: each weight layer (Gemm, MatMul, Conv with group 1) feeds the next through unit-wise ops
 * (activations, pooling, bias adds, Flatten, Dropout…). Anything else — a branch, a residual Add, a LayerNorm that
 * mixes units — is an error naming the node.
 *
 * Below the graph: its normalised spectral clustering (Shi & Malik 2000) and n-cut; the eigen-solvers are in spectral.ts.
 *
 * @example
 * const g = unitGraph(model.graph);             // layers x (784), fc1 (128), fc2 (64), fc3 (10); edges |W|
 * const a = adjacency(g);                        // g.units × g.units, symmetric
 * const p = spectralPartition(a, g.units, 4, (pts, n, d, k) => kmeans(pts, n, d, k).assignments); // p.ncut
 */
import { mulberry32, shuffleInPlace } from '../../data/datasets/random.js';
import type { Graph } from '../../onnx/graph.js';
import { getAttr, type NodeProto } from '../../onnx/proto.js';
import { tensorFromProto } from '../../onnx/tensor-proto.js';
import type { Tensor } from '../../runtime/tensor.js';
import { DENSE_MAX, denseTop, topEigenKrylov } from './spectral.js';

/** One layer of units: the graph input, or the output units of a weight node. */
export interface UnitLayer {
  /** The weight node's name (`/fc1/Gemm`), or the input's name. */
  readonly name: string;
  readonly op: 'Input' | 'Gemm' | 'MatMul' | 'Conv';
  readonly units: number;
  /** The value carrying this layer's units after its unit-wise ops (post-activation), for activation statistics. */
  readonly activation: string;
}

/** The edges between layer `from` and layer `to` = from + 1: strengths [to.units, from.units], row-major. */
export interface LayerEdges {
  readonly from: number;
  readonly to: number;
  readonly weights: Float64Array;
}

export interface UnitGraph {
  readonly layers: readonly UnitLayer[];
  readonly edges: readonly LayerEdges[];
  /** Index of each layer's first unit in the concatenated unit numbering. */
  readonly offsets: readonly number[];
  readonly units: number;
}

export interface UnitGraphOptions {
  /** Include the input units (features, or input channels) as nodes (default true, as Filan et al.). */
  readonly inputs?: boolean;
  /** Strength of a convolution's (or grouped dense) edge: L1 norm of the slice (default) or its Frobenius norm. */
  readonly norm?: 'l1' | 'fro';
}

/** Ops that act on each unit separately (or pool within a channel): they pass the units through. */
const UNITWISE = new Set(['Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'Tanh', 'Elu', 'Selu', 'Gelu', 'Softplus', 'HardSigmoid', 'Clip', 'Dropout', 'Identity',
  'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'BatchNormalization', 'Cast']);
/** Elementwise ops whose other operand is stored (a bias or a scale): unit-wise too. */
const AFFINE = new Set(['Add', 'Sub', 'Mul', 'Div']);
/** Ops that mix the units but may end a network (nothing with weights may follow them). */
const FINAL = new Set(['Softmax', 'LogSoftmax']);

const label = (n: NodeProto, i: number) => `'${n.name || `#${i}`}' (${n.opType})`;

/** Reads the weight layers of a chain network and the strengths of the connections between their units. */
export function unitGraph(graph: Graph, options: UnitGraphOptions = {}): UnitGraph {
  const norm = options.norm ?? 'l1';
  if (norm !== 'l1' && norm !== 'fro') throw new Error(`unitGraph: norm must be 'l1' or 'fro', got '${String(norm)}'`);
  const inputs = graph.inputs;
  if (inputs.length !== 1) throw new Error(`unitGraph: a chain network has one input, this graph has ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
  const stored = (name: string, node: string): Tensor => {
    const init = graph.initializers.get(name);
    const producer = graph.producerOf(name);
    const proto = init ?? (producer?.opType === 'Constant' ? getAttr(producer, 'value')?.t : undefined);
    if (!proto) throw new Error(`unitGraph: node ${node} reads its weights '${name}' from a computed value; only stored weights (initializers) are read`);
    return tensorFromProto(proto);
  };
  const isStored = (name: string) => graph.initializers.has(name) || graph.producerOf(name)?.opType === 'Constant';

  let current = inputs[0].name;
  const layers: { name: string; op: UnitLayer['op']; units: number; activation: string }[] = [{ name: current, op: 'Input', units: 0, activation: current }];
  const edges: LayerEdges[] = [];
  /** Channels whose flattened features feed the next dense layer (set by a Flatten after a convolution). */
  let groups = 0;
  let mixer: string | undefined;
  const nodes = graph.nodes;
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i];
    if (node.opType === 'Constant') continue;
    const what = label(node, i);
    if (!node.input.includes(current)) {
      throw new Error(`unitGraph: node ${what} is off the chain of layers (it does not read '${current}'); only chain networks of dense and conv layers are supported`);
    }
    const readers = graph.consumers.get(current) ?? [];
    if (readers.length > 1) {
      throw new Error(`unitGraph: '${current}' branches into ${readers.map((r) => label(nodes[r], r)).join(' and ')}; only chain networks are supported`);
    }
    const last = layers[layers.length - 1];
    const isWeight = node.opType === 'Gemm' || node.opType === 'MatMul' || node.opType === 'Conv';
    if (isWeight) {
      if (mixer) throw new Error(`unitGraph: node ${mixer} mixes the units before the weight node ${what}; unsupported`);
      if (node.input[0] !== current) throw new Error(`unitGraph: node ${what} reads '${current}' as its weights; expected it as the data input`);
      const { units, inUnits, w } = readLayer(node, what, stored(node.input[1], what), groups, norm);
      if (layers.length === 1) layers[0].units = inUnits;
      else if (inUnits !== last.units) throw new Error(`unitGraph: node ${what} takes ${inUnits} units, the layer before gives ${last.units}`);
      current = node.output[0];
      layers.push({ name: node.name || `#${i}`, op: node.opType as UnitLayer['op'], units, activation: current });
      edges.push({ from: layers.length - 2, to: layers.length - 1, weights: w });
      groups = 0;
      continue;
    }
    if (node.output.length < 1 || node.input.filter((n) => n === current).length !== 1) throw new Error(`unitGraph: node ${what} is unsupported`);
    if (node.opType === 'Flatten') {
      if (last.op === 'Conv') groups = last.units;
    } else if (FINAL.has(node.opType)) {
      mixer = what;
    } else if (UNITWISE.has(node.opType) || (AFFINE.has(node.opType) && node.input.every((n) => n === current || n === '' || isStored(n)))) {
      if (node.opType === 'BatchNormalization' || node.opType === 'Dropout' || node.opType === 'Clip' || node.opType === 'PRelu') {
        for (const n of node.input.slice(1)) if (n !== '' && !isStored(n)) throw new Error(`unitGraph: node ${what} reads the computed value '${n}'; unsupported`);
      }
    } else {
      throw new Error(`unitGraph: node ${what} is unsupported: only dense (Gemm, MatMul) and conv layers joined by unit-wise ops (${[...UNITWISE].slice(0, 6).join(', ')}…, bias Add, Flatten) are read`);
    }
    current = node.output[0];
    if (!mixer && node.opType !== 'Flatten' && layers.length > 1) last.activation = current;
  }
  if (layers.length < 2) throw new Error('unitGraph: the graph has no dense or conv layer');
  const withInputs = options.inputs ?? true;
  const kept = withInputs ? layers : layers.slice(1);
  const keptEdges = withInputs ? edges : edges.slice(1).map((e) => ({ ...e, from: e.from - 1, to: e.to - 1 }));
  const offsets: number[] = [];
  let total = 0;
  for (const l of kept) {
    offsets.push(total);
    total += l.units;
  }
  return { layers: kept, edges: keptEdges, offsets, units: total };
}

/** Units out, units in and the edge strengths [out, in] of one weight node. */
function readLayer(node: NodeProto, what: string, w: Tensor, groups: number, norm: 'l1' | 'fro'): { units: number; inUnits: number; w: Float64Array } {
  const data = w.data as ArrayLike<number>;
  const sh = w.shape;
  const agg = (acc: number, v: number) => (norm === 'l1' ? acc + Math.abs(v) : acc + v * v);
  const fin = (acc: number) => (norm === 'l1' ? acc : Math.sqrt(acc));
  if (node.opType === 'Conv') {
    const group = Number(getAttr(node, 'group')?.i ?? 1n);
    if (group !== 1) throw new Error(`unitGraph: node ${what} is a grouped convolution (group ${group}); only group 1 is supported`);
    if (sh.length < 3) throw new Error(`unitGraph: node ${what} has a kernel of shape [${sh.join(', ')}]`);
    const [out, inp] = sh;
    const slice = sh.slice(2).reduce((a, b) => a * b, 1); // W [out, in, kh, kw]
    const e = new Float64Array(out * inp);
    for (let o = 0; o < out; o++) {
      for (let c = 0; c < inp; c++) {
        let acc = 0;
        for (let t = 0; t < slice; t++) acc = agg(acc, data[(o * inp + c) * slice + t]);
        e[o * inp + c] = fin(acc);
      }
    }
    return { units: out, inUnits: inp, w: e };
  }
  if (sh.length !== 2) throw new Error(`unitGraph: node ${what} has a weight of shape [${sh.join(', ')}]; a dense layer needs a matrix`);
  let out: number;
  let features: number;
  let at: (o: number, f: number) => number;
  if (node.opType === 'Gemm') {
    if (Number(getAttr(node, 'transA')?.i ?? 0n) !== 0) throw new Error(`unitGraph: node ${what} has transA = 1; unsupported`);
    const alpha = Math.abs(getAttr(node, 'alpha')?.f || 1);
    const transB = Number(getAttr(node, 'transB')?.i ?? 0n) !== 0;
    [out, features] = transB ? [sh[0], sh[1]] : [sh[1], sh[0]];
    at = transB ? (o, f) => alpha * data[o * features + f] : (o, f) => alpha * data[f * out + o]; // W [out, in] or [in, out]
  } else {
    [features, out] = [sh[0], sh[1]]; // MatMul: W [in, out]
    at = (o, f) => data[f * out + o];
  }
  const inUnits = groups > 0 ? groups : features;
  if (features % inUnits !== 0) throw new Error(`unitGraph: node ${what} takes ${features} features, not a multiple of the ${inUnits} channels flattened into it`);
  const per = features / inUnits;
  const e = new Float64Array(out * inUnits);
  for (let o = 0; o < out; o++) {
    for (let c = 0; c < inUnits; c++) {
      let acc = 0;
      for (let t = 0; t < per; t++) acc = agg(acc, at(o, c * per + t));
      e[o * inUnits + c] = fin(acc);
    }
  }
  return { units: out, inUnits, w: e };
}

/** The symmetric n × n affinity matrix of a unit graph (edge matrices replaced by `edges` when given). */
export function adjacency(g: UnitGraph, edges: readonly LayerEdges[] = g.edges): Float64Array {
  const n = g.units;
  const a = new Float64Array(n * n);
  for (const e of edges) {
    const rows = g.layers[e.to].units;
    const cols = g.layers[e.from].units;
    const r0 = g.offsets[e.to];
    const c0 = g.offsets[e.from];
    for (let o = 0; o < rows; o++) {
      for (let c = 0; c < cols; c++) {
        const v = e.weights[o * cols + c];
        a[(r0 + o) * n + c0 + c] = v;
        a[(c0 + c) * n + r0 + o] = v;
      }
    }
  }
  return a;
}

/** Each layer's edge strengths permuted among themselves (Filan et al.'s shuffled-weights null model). */
export function shuffledEdges(g: UnitGraph, rand: () => number): LayerEdges[] {
  return g.edges.map((e) => ({ ...e, weights: shuffleInPlace(e.weights.slice(), rand) }));
}

// ---- Spectral clustering of an affinity matrix -------------------------------------------------------------------

export interface SpectralPartition {
  /** Cluster of each unit, 0 … k − 1; −1 for an isolated unit (degree 0), which no cluster can hold meaningfully. */
  readonly assignments: Int32Array;
  readonly ncut: number;
  /** The k + 1 smallest eigenvalues of the normalised Laplacian of the connected units (ascending). */
  readonly eigenvalues: Float64Array;
  readonly isolated: number;
}

/**
 * Normalised cut of a partition (Shi & Malik 2000): Σ_c cut(A_c, Ā_c) / vol(A_c), with vol the sum of the degrees in
 * the cluster. 0 for clusters with no edges between them; k − Σ_c assoc(A_c)/vol(A_c) ≤ k in general. Units with
 * assignment −1 and clusters of zero volume contribute nothing.
 */
export function ncut(affinity: ArrayLike<number>, n: number, assignments: ArrayLike<number>, k: number): number {
  const cut = new Float64Array(k);
  const vol = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const ci = assignments[i];
    if (ci < 0) continue;
    for (let j = 0; j < n; j++) {
      const a = affinity[i * n + j];
      vol[ci] += a;
      if (assignments[j] !== ci) cut[ci] += a;
    }
  }
  let s = 0;
  for (let c = 0; c < k; c++) if (vol[c] > 0) s += cut[c] / vol[c];
  return s;
}

/**
 * Normalised spectral clustering as Shi & Malik (2000) and Filan et al. (via scikit-learn) do it: the k eigenvectors
 * u of L = I − D^{-1/2} A D^{-1/2} with the smallest eigenvalues, rows of D^{-1/2} U (the generalised eigenvectors of
 * (D − A) v = λ D v) clustered by k-means. Isolated units are set aside (assignment −1).
 */
export function spectralPartition(affinity: ArrayLike<number>, n: number, k: number, cluster: (points: Float64Array, n: number, d: number, k: number) => Int32Array): SpectralPartition {
  if (affinity.length !== n * n) throw new Error(`spectralPartition: expected an ${n} × ${n} affinity matrix, got ${affinity.length} values`);
  if (!Number.isInteger(k) || k < 2) throw new Error(`spectralPartition: k must be an integer ≥ 2, got ${k}`);
  const degree = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const a = affinity[i * n + j];
      if (!(a >= 0) || !Number.isFinite(a)) throw new Error(`spectralPartition: affinity (${i}, ${j}) is ${a}; affinities must be finite and ≥ 0`);
      const b = affinity[j * n + i];
      if (Math.abs(a - b) > 1e-9 * (a + Math.abs(b))) throw new Error(`spectralPartition: the affinity is not symmetric at (${i}, ${j}): ${a} vs ${b}`);
      degree[i] += a;
    }
  }
  const kept = Array.from({ length: n }, (_, i) => i).filter((i) => degree[i] > 0);
  const m = kept.length;
  if (m < k) throw new Error(`spectralPartition: only ${m} of ${n} units have any connection; cannot make k = ${k} clusters`);
  const inv = Float64Array.from(kept, (i) => 1 / Math.sqrt(degree[i]));
  // M = D^{-1/2} A D^{-1/2}; the smallest eigenvalues of L = I − M are 1 − the largest of M.
  const norm = new Float64Array(m * m);
  for (let a = 0; a < m; a++) for (let b = 0; b < m; b++) norm[a * m + b] = inv[a] * affinity[kept[a] * n + kept[b]] * inv[b];
  const want = Math.min(m, k + 1);
  const top = m <= DENSE_MAX ? denseTop(norm, m, want) : topEigenKrylov(norm, m, want, mulberry32(0x5bec), { converge: k });
  const points = new Float64Array(m * k);
  for (let a = 0; a < m; a++) for (let j = 0; j < k; j++) points[a * k + j] = top.vectors[a * want + j] * inv[a];
  const sub = cluster(points, m, k, k);
  const assignments = new Int32Array(n).fill(-1);
  kept.forEach((i, a) => (assignments[i] = sub[a]));
  return { assignments, ncut: ncut(affinity, n, assignments, k), eigenvalues: top.values.map((v) => 1 - v), isolated: n - m };
}
