/**
 * Influence functions (Koh & Liang 2017, "Understanding Black-box Predictions via Influence Functions") on the
 * model's last dense layer: I_up,loss(z, z_test) = −∇L(z_test)ᵀ H⁻¹ ∇L(z), how the test loss moves when training
 * example z is up-weighted. Removing z moves it by about −I/n, so the most *negative* scores are the most helpful
 * examples. The parameters are the last layer's weight and bias (a full-network Hessian is out of reach); the
 * features feeding that layer are captured once per example and everything else is exact host arithmetic:
 *
 * - per-example gradient: for logits = W a + b the gradient of the cross-entropy is (p − onehot(y)) ⊗ [a, 1]
 *   (checked against `model.grad` with the seed p − onehot on one example);
 * - Hessian-vector products: softmax regression's H = (1/n) Σ (diag(p) − ppᵀ) ⊗ ããᵀ + 2·l2·I + damping·I, exact;
 * - H⁻¹v by conjugate gradients, or by LiSSA (Agarwal, Bullins, Hazan 2017): h ← v + h − H_B h / scale over sampled
 *   minibatches B, s = h / scale, which converges to (H + damping)⁻¹v when scale exceeds H's largest eigenvalue.
 *
 * @example
 * const r = await influenceFunctions(model, train.slice(0, 1000), test.slice(0, 3), { l2: 1e-3 });
 * r.helpful(0, 5); // the five training examples whose removal would raise test example 0's loss most
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import { tensorFromProto } from '../../onnx/tensor-proto.js';
import { getAttr } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';

/** The last dense layer: logits = W a + b, a Gemm producing the model's first output. */
export interface LastLayer {
  /** The value feeding it (capturable as a site). */
  readonly input: string;
  readonly weight: string;
  readonly bias?: string;
  readonly output: string;
  readonly classes: number;
  /** Features per example, without the appended constant 1. */
  readonly features: number;
  /** Whether W is stored [classes, features] (PyTorch's nn.Linear, transB = 1) rather than [features, classes]. */
  readonly transB: boolean;
  /** [W | b] as [classes, features + 1], row-major, float64. */
  readonly theta: Float64Array;
}

/** Captured last-layer inputs ã = [a, 1] [n, d], labels and softmax probabilities [n, c] at θ. */
export interface Features {
  readonly n: number;
  readonly d: number;
  readonly c: number;
  readonly a: Float64Array;
  readonly y: Int32Array;
  readonly p: Float64Array;
}

/** One ranked training example. */
export interface RankedExample {
  readonly index: number;
  readonly score: number;
}

export function lastLayer(model: Model): LastLayer {
  const output = model.outputs[0].name;
  const node = model.graph.producerOf(output);
  if (!node || node.opType !== 'Gemm') {
    throw new Error(`last layer: the output '${output}' is produced by ${node ? `a ${node.opType} node` : 'no node'}, not a Gemm (dense) layer; last-layer methods need logits = W a + b`);
  }
  for (const [k, want] of [['alpha', 1], ['beta', 1], ['transA', 0]] as const) {
    const at = getAttr(node, k);
    const v = at === undefined ? want : k === 'transA' ? Number(at.i) : at.f;
    if (v !== want) throw new Error(`last layer: Gemm '${node.name}' has ${k} = ${v}; only ${k} = ${want} is supported`);
  }
  const [input, weight, bias] = node.input;
  const w = model.graph.initializers.get(weight);
  if (!w) throw new Error(`last layer: the weight '${weight}' of Gemm '${node.name}' is not an initializer`);
  const transB = Number(getAttr(node, 'transB')?.i ?? 0) === 1;
  const W = tensorFromProto(w);
  const [C, D] = transB ? W.shape : [W.shape[1], W.shape[0]];
  const theta = new Float64Array(C * (D + 1));
  for (let c = 0; c < C; c++) for (let j = 0; j < D; j++) theta[c * (D + 1) + j] = Number(W.data[transB ? c * D + j : j * C + c]);
  if (bias) {
    const b = model.graph.initializers.get(bias);
    if (!b) throw new Error(`last layer: the bias '${bias}' of Gemm '${node.name}' is not an initializer`);
    const bd = tensorFromProto(b);
    if (bd.size !== C) throw new Error(`last layer: bias '${bias}' has ${bd.size} values for ${C} classes (only a per-class bias is supported)`);
    for (let c = 0; c < C; c++) theta[c * (D + 1) + D] = Number(bd.data[c]);
  }
  return { input, weight, bias: bias || undefined, output, classes: C, features: D, transB, theta };
}

/**
 * Streams `data` through the model in batches and keeps the last layer's inputs (with a 1 appended), the labels and
 * the model's softmax probabilities. Memory: n · (features + classes) numbers, the data the layer is fitted on.
 */
/** Where a long example-explanation run stands: a stage, and how much of it is done. */
export type StageProgress = (p: { readonly stage: string; readonly done: number; readonly total: number }) => void;

export async function lastLayerFeatures(model: Model, layer: LastLayer, data: Dataset, batchSize = 256, onProgress?: StageProgress, stage = 'features'): Promise<Features & { maxLogitError: number }> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`last layer: batchSize must be a positive integer, got ${batchSize}`);
  if (data.size === 0) throw new Error(`last layer: dataset ${data.name} is empty`);
  const { classes: c, features: D } = layer;
  const d = D + 1;
  const a = new Float64Array(data.size * d);
  const p = new Float64Array(data.size * c);
  const y = new Int32Array(data.size);
  let row = 0;
  let maxLogitError = 0;
  for (const b of data.batches(batchSize)) {
    const r = await model.run({ [model.inputs[0].name]: b.x }, { capture: [layer.input] });
    const feats = r.captures[layer.input];
    const logits = r.outputs[layer.output];
    const B = b.x.shape[0];
    if (feats.size !== B * D) throw new Error(`last layer: '${layer.input}' has ${feats.size / B} values per example, the weight expects ${D}`);
    if (b.y.size !== B) throw new Error(`last layer: dataset ${data.name} must have one class label per example`);
    for (let i = 0; i < B; i++, row++) {
      for (let j = 0; j < D; j++) a[row * d + j] = Number(feats.data[i * D + j]);
      a[row * d + D] = 1;
      const label = Number(b.y.data[i]);
      if (!(label >= 0 && label < c)) throw new Error(`last layer: label ${label} of example ${row} is not one of ${c} classes`);
      y[row] = label;
      const z = Array.from({ length: c }, (_, k) => Number(logits.data[i * c + k]));
      softmaxInto(z, p, row * c);
      for (let k = 0; k < c; k++) maxLogitError = Math.max(maxLogitError, Math.abs(z[k] - dot(layer.theta, k * d, a, row * d, d)));
    }
    onProgress?.({ stage, done: row, total: data.size });
  }
  return { n: data.size, d, c, a, y, p, maxLogitError };
}

const dot = (u: Float64Array, i: number, v: Float64Array, j: number, d: number) => {
  let s = 0;
  for (let k = 0; k < d; k++) s += u[i + k] * v[j + k];
  return s;
};

function softmaxInto(z: ArrayLike<number>, out: Float64Array, at: number): void {
  let m = -Infinity;
  for (let k = 0; k < z.length; k++) m = Math.max(m, z[k]);
  let s = 0;
  for (let k = 0; k < z.length; k++) s += (out[at + k] = Math.exp(z[k] - m));
  for (let k = 0; k < z.length; k++) out[at + k] /= s;
}

/** Softmax probabilities [n, c] of θ on the features (for refits on the host). */
export function probabilities(theta: Float64Array, F: Omit<Features, 'p'>): Float64Array {
  const p = new Float64Array(F.n * F.c);
  const z = new Float64Array(F.c);
  for (let i = 0; i < F.n; i++) {
    for (let k = 0; k < F.c; k++) z[k] = dot(theta, k * F.d, F.a, i * F.d, F.d);
    softmaxInto(z, p, i * F.c);
  }
  return p;
}

/** ∇θ of example i's cross-entropy: (p_i − onehot(y_i)) ⊗ ã_i, [c, d]. */
export function exampleGradient(F: Features, i: number, out = new Float64Array(F.c * F.d)): Float64Array {
  const { c, d, a, p, y } = F;
  for (let k = 0; k < c; k++) {
    const r = p[i * c + k] - (y[i] === k ? 1 : 0);
    for (let j = 0; j < d; j++) out[k * d + j] = r * a[i * d + j];
  }
  return out;
}

/** Mean cross-entropy plus l2·‖θ‖², and its gradient. */
export function objective(theta: Float64Array, F: Features, l2: number): { loss: number; grad: Float64Array } {
  const g = new Float64Array(theta.length);
  const e = new Float64Array(theta.length);
  let loss = 0;
  for (let i = 0; i < F.n; i++) {
    loss -= Math.log(Math.max(F.p[i * F.c + F.y[i]], 1e-300));
    exampleGradient(F, i, e);
    for (let k = 0; k < g.length; k++) g[k] += e[k];
  }
  let sq = 0;
  for (let k = 0; k < g.length; k++) {
    g[k] = g[k] / F.n + 2 * l2 * theta[k];
    sq += theta[k] * theta[k];
  }
  return { loss: loss / F.n + l2 * sq, grad: g };
}

/** H v = (1/|R|) Σ_{i∈R} ã_i ⊗ (diag(p_i) − p_i p_iᵀ)(V ã_i) + shift·v over rows R (all by default). */
export function hessianVector(F: Features, v: Float64Array, shift: number, rows?: ArrayLike<number>): Float64Array {
  const { c, d, a, p } = F;
  const out = new Float64Array(v.length);
  const u = new Float64Array(c);
  const count = rows ? rows.length : F.n;
  for (let r = 0; r < count; r++) {
    const i = rows ? rows[r] : r;
    let pu = 0;
    for (let k = 0; k < c; k++) pu += p[i * c + k] * (u[k] = dot(v, k * d, a, i * d, d));
    for (let k = 0; k < c; k++) {
      const w = p[i * c + k] * (u[k] - pu);
      for (let j = 0; j < d; j++) out[k * d + j] += w * a[i * d + j];
    }
  }
  for (let k = 0; k < v.length; k++) out[k] = out[k] / count + shift * v[k];
  return out;
}

export interface SolveResult {
  readonly x: Float64Array;
  readonly iterations: number;
  /** ‖A x − b‖ / ‖b‖ with the exact full-data A. */
  readonly residual: number;
}

const norm = (v: Float64Array) => Math.sqrt(dot(v, 0, v, 0, v.length));

/** Conjugate gradients on the symmetric positive definite A (Hestenes & Stiefel 1952). */
export function conjugateGradient(A: (v: Float64Array) => Float64Array, b: Float64Array, { tol = 1e-10, maxIter = 1000 } = {}): SolveResult {
  const x = new Float64Array(b.length);
  const r = b.slice();
  const q = b.slice();
  let rr = dot(r, 0, r, 0, r.length);
  const stop = tol * tol * rr;
  let it = 0;
  while (it < maxIter && rr > stop) {
    const Aq = A(q);
    const alpha = rr / dot(q, 0, Aq, 0, q.length);
    for (let k = 0; k < x.length; k++) {
      x[k] += alpha * q[k];
      r[k] -= alpha * Aq[k];
    }
    const next = dot(r, 0, r, 0, r.length);
    for (let k = 0; k < q.length; k++) q[k] = r[k] + (next / rr) * q[k];
    rr = next;
    it++;
  }
  return { x, iterations: it, residual: relResidual(A, x, b) };
}

function relResidual(A: (v: Float64Array) => Float64Array, x: Float64Array, b: Float64Array): number {
  const Ax = A(x);
  for (let k = 0; k < Ax.length; k++) Ax[k] -= b[k];
  return norm(Ax) / Math.max(norm(b), 1e-300);
}

export interface LissaOptions {
  /** Recursion steps per repeat (default 1000). */
  readonly depth?: number;
  /** Must exceed the largest eigenvalue of the damped Hessian (default 1.5× a power-iteration estimate). */
  readonly scale?: number;
  /** Independent recursions averaged (default 1). */
  readonly repeats?: number;
  /** Examples per sampled Hessian (default min(n, 100)). */
  readonly batch?: number;
  readonly seed?: number;
}

/** Largest eigenvalue of the SPD operator by power iteration (from a fixed start). */
export function largestEigenvalue(A: (v: Float64Array) => Float64Array, dim: number, iterations = 30): number {
  let v: Float64Array = Float64Array.from({ length: dim }, (_, k) => 1 + (k % 7) / 7);
  let lambda = 0;
  for (let t = 0; t < iterations; t++) {
    const nv = norm(v);
    for (let k = 0; k < dim; k++) v[k] /= nv;
    const Av = A(v);
    lambda = dot(v, 0, Av, 0, dim);
    v = Av;
  }
  return lambda;
}

/** LiSSA: (H + shift)⁻¹ v by the stochastic Neumann recursion over sampled minibatch Hessians. */
export function lissa(F: Features, v: Float64Array, shift: number, o: LissaOptions = {}): SolveResult & { scale: number } {
  const full = (u: Float64Array) => hessianVector(F, u, shift);
  const depth = o.depth ?? 1000;
  const repeats = o.repeats ?? 1;
  const batch = o.batch ?? Math.min(F.n, 100);
  for (const [k, x] of [['depth', depth], ['repeats', repeats], ['batch', batch]] as const) {
    if (!Number.isInteger(x) || x < 1) throw new Error(`LiSSA: ${k} must be a positive integer, got ${x}`);
  }
  const scale = o.scale ?? 1.5 * largestEigenvalue(full, v.length);
  if (!(scale > 0)) throw new Error(`LiSSA: scale must be positive, got ${scale}`);
  const rand = mulberry32(o.seed ?? 0);
  const rows = new Int32Array(Math.min(batch, F.n));
  const sum = new Float64Array(v.length);
  for (let r = 0; r < repeats; r++) {
    const h = v.slice();
    for (let t = 0; t < depth; t++) {
      for (let k = 0; k < rows.length; k++) rows[k] = Math.floor(rand() * F.n);
      const Hh = hessianVector(F, h, shift, rows);
      for (let k = 0; k < h.length; k++) h[k] = v[k] + h[k] - Hh[k] / scale;
    }
    for (let k = 0; k < h.length; k++) sum[k] += h[k] / scale / repeats;
  }
  if (!sum.every(Number.isFinite)) throw new Error(`LiSSA diverged: scale ${scale} is below the sampled Hessians' largest eigenvalue; pass a larger scale`);
  return { x: sum, iterations: depth * repeats, residual: relResidual(full, sum, v), scale };
}

/** Cosine similarity of two vectors. */
export const cosine = (u: Float64Array, v: Float64Array) => dot(u, 0, v, 0, u.length) / Math.max(norm(u) * norm(v), 1e-300);

/** The k entries ranked first: largest scores (or smallest), ties to the smaller index. */
export function topExamples(scores: ArrayLike<number>, k: number, order: 'largest' | 'smallest'): RankedExample[] {
  if (!Number.isInteger(k) || k < 1) throw new Error(`top examples: k must be a positive integer, got ${k}`);
  const s = order === 'largest' ? 1 : -1;
  const ix = Array.from({ length: scores.length }, (_, i) => i);
  ix.sort((i, j) => s * (scores[j] - scores[i]) || i - j);
  return ix.slice(0, k).map((index) => ({ index, score: scores[index] }));
}

export interface InfluenceOptions {
  /** The L2 coefficient of the training objective, l2·‖θ‖² (default 0). */
  readonly l2?: number;
  /** Added to the Hessian's diagonal so it is invertible (default 0.01). */
  readonly damping?: number;
  readonly solver?: 'cg' | 'lissa';
  /** Also solve with the other solver and report the cosine between the two s_test vectors (default false). */
  readonly crossCheck?: boolean;
  readonly lissa?: LissaOptions;
  readonly cg?: { readonly tol?: number; readonly maxIter?: number };
  readonly batchSize?: number;
  readonly onProgress?: StageProgress;
}

export interface InfluenceResult {
  readonly method: 'influence-functions';
  readonly parameters: { readonly weight: string; readonly bias?: string; readonly count: number };
  readonly solver: 'cg' | 'lissa';
  /** I_up,loss(z_i, z_t) per test example t, per training example i; negative = helpful. */
  readonly scores: readonly Float64Array[];
  /** s_test = (H + damping)⁻¹ ∇L(z_t) per test example, [c·(features + 1)]. */
  readonly sTest: readonly Float64Array[];
  readonly testLoss: readonly number[];
  /** Training examples whose removal raises (helpful) or lowers (harmful) the test loss most. */
  helpful(t: number, k: number): RankedExample[];
  harmful(t: number, k: number): RankedExample[];
  readonly checks: Check[];
}

/** Influence of every training example on the loss of every test example, through the last dense layer. */
export async function influenceFunctions(model: Model, train: Dataset, test: Dataset, options: InfluenceOptions = {}): Promise<InfluenceResult> {
  const { l2 = 0, damping = 0.01, solver = 'cg', crossCheck = false } = options;
  if (!(l2 >= 0) || !(damping >= 0) || l2 + damping <= 0) throw new Error(`influence: l2 (${l2}) and damping (${damping}) must be non-negative and not both 0 (the Hessian is singular)`);
  if (solver !== 'cg' && solver !== 'lissa') throw new Error(`influence: unknown solver '${String(solver)}' (known: cg, lissa)`);
  const layer = lastLayer(model);
  const F = await lastLayerFeatures(model, layer, train, options.batchSize, options.onProgress, 'training features');
  const T = await lastLayerFeatures(model, layer, test, options.batchSize, options.onProgress, 'test features');
  const shift = 2 * l2 + damping;
  const H = (v: Float64Array) => hessianVector(F, v, shift);
  const solve = (which: 'cg' | 'lissa', b: Float64Array) => (which === 'cg' ? conjugateGradient(H, b, options.cg) : lissa(F, b, shift, options.lissa));
  const g = new Float64Array(F.c * F.d);
  const scores: Float64Array[] = [];
  const sTest: Float64Array[] = [];
  const residuals: number[] = [];
  const agreement: number[] = [];
  for (let t = 0; t < T.n; t++) {
    const s = solve(solver, exampleGradient(T, t));
    sTest.push(s.x);
    residuals.push(s.residual);
    if (crossCheck) agreement.push(cosine(s.x, solve(solver === 'cg' ? 'lissa' : 'cg', exampleGradient(T, t)).x));
    const row = new Float64Array(F.n);
    for (let i = 0; i < F.n; i++) row[i] = -dot(s.x, 0, exampleGradient(F, i, g), 0, g.length);
    scores.push(row);
    options.onProgress?.({ stage: `influence (${solver})`, done: t + 1, total: T.n });
  }
  const checks: Check[] = [
    { name: 'host last layer reproduces the logits', value: Math.max(F.maxLogitError, T.maxLogitError), passed: Math.max(F.maxLogitError, T.maxLogitError) < 1e-3, detail: `max |W a + b − model logits| over train and test examples (last layer ${layer.weight})` },
    await gradientCheck(model, layer, train, F),
    { name: 'inverse-HVP residual', value: residuals, passed: residuals.every((r) => r < (solver === 'cg' ? 1e-6 : 0.05)), detail: `‖(H + ${shift.toPrecision(3)}) s_test − ∇L(z_test)‖ / ‖∇L(z_test)‖ by ${solver}` },
  ];
  if (crossCheck) checks.push({ name: 'LiSSA and CG agree', value: agreement, passed: agreement.every((a) => a > 0.95), detail: 'cosine between the two s_test vectors per test example' });
  const testLoss = Array.from({ length: T.n }, (_, t) => -Math.log(T.p[t * T.c + T.y[t]]));
  const at = (t: number) => {
    if (!(t >= 0 && t < scores.length)) throw new Error(`influence: test example ${t} out of range [0, ${scores.length})`);
    return scores[t];
  };
  return {
    method: 'influence-functions',
    parameters: { weight: layer.weight, bias: layer.bias, count: F.c * F.d },
    solver,
    scores,
    sTest,
    testLoss,
    helpful: (t, k) => topExamples(at(t), k, 'smallest'),
    harmful: (t, k) => topExamples(at(t), k, 'largest'),
    checks,
  };
}

/** The closed-form per-example gradient of training example 0 against the model's own autodiff (seed p − onehot). */
export async function gradientCheck(model: Model, layer: LastLayer, data: Dataset, F: Features): Promise<Check> {
  const { x } = data.gather([0]);
  const seed = Tensor.float32(Array.from({ length: F.c }, (_, k) => F.p[k] - (F.y[0] === k ? 1 : 0)), [1, F.c]);
  const wrt = [layer.weight, ...(layer.bias ? [layer.bias] : [])];
  const r = await model.grad({ [model.inputs[0].name]: x }, { of: layer.output, wrt, seed });
  const mine = exampleGradient(F, 0);
  const D = layer.features;
  let err = 0;
  let scale = 1e-12;
  for (let c = 0; c < F.c; c++) {
    for (let j = 0; j < D; j++) {
      const auto = Number(r.grads[layer.weight].data[layer.transB ? c * D + j : j * F.c + c]);
      err = Math.max(err, Math.abs(auto - mine[c * F.d + j]));
      scale = Math.max(scale, Math.abs(auto));
    }
    if (layer.bias) err = Math.max(err, Math.abs(Number(r.grads[layer.bias].data[c]) - mine[c * F.d + D]));
  }
  return { name: 'closed-form gradient matches autodiff', value: err / scale, passed: err / scale < 1e-4, detail: 'max |(p − y) ⊗ [a, 1] − model.grad| / max |model.grad| on training example 0' };
}
