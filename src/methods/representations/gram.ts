/**
 * Linear CKA's products (Kornblith et al. 2019) as small ONNX graphs run by ONNX Runtime, each representation's columns
 * centred inside the graph: its covariance XcᵀXc [p, p] with the centred features (feature form, for p ≤ n) or its
 * centred Gram matrix K = XcXcᵀ [n, n] (Gram form, for p > n), computed once per representation and reused by every
 * pair. A pair then costs one cross product ‖YcᵀXc‖²_F (feature form) or one inner product ⟨K, L⟩ = ‖YcᵀXc‖²_F of
 * stored Gram matrices. Sums of squares and inner products accumulate in float64 on the host. `Representation` holds
 * one activation matrix with these statistics (and the RBF Gram matrix and RSA's dissimilarities) computed once.
 *
 * @example
 * const [a, b] = await Promise.all([linearStats(x, 'feature'), linearStats(y, 'feature')]);
 * const cka = (await crossNorm2(a, b)) / Math.sqrt(a.self * b.self);
 */
import { attr, encodeModel, makeGraph, makeModel, makeNode, makeValueInfo, type Dim, type NodeProto } from '../../onnx/proto.js';
import { ONNX_DTYPE } from '../../onnx/tensor-proto.js';
import { defaultRuntime } from '../../runtime/default.js';
import type { Runtime, RuntimeSession } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';
import { centreColumns, crossProduct, gramProduct } from './cca.js';

type Kind = 'covariance' | 'covariance2' | 'pair' | 'gram' | 'gram2' | 'cross';

/**
 * Sizes from which a symmetric product is computed as three half-size blocks (a symmetric rank-k update): the Gram
 * matrix from row halves (K₁₁, K₁₂, K₂₂; K₂₁ = K₁₂ᵀ), the covariance's norm from column halves (‖C₁₁‖² + 2‖C₁₂‖² + ‖C₂₂‖²).
 */
const SPLIT_GRAM = 1024;
const SPLIT_COVARIANCE = 256;

const sessions = new Map<Runtime, Map<string, Promise<RuntimeSession>>>();

function node(name: string, op: string, inputs: string[], outputs: string[], attributes: ReturnType<typeof attr>[] = []): NodeProto {
  return makeNode(op, inputs, outputs, { name, attributes });
}

/** Xc = X − column means (ReduceMean over rows). */
const centre = (x: string): NodeProto[] => [node(`${x}_mean`, 'ReduceMean', [x], [`${x}_m`], [attr('axes', { ints: [0] }), attr('keepdims', { int: 1 })]), node(`${x}_centre`, 'Sub', [x, `${x}_m`], [`${x}c`])];
const gemm = (name: string, a: string, b: string, out: string, trans: 'transA' | 'transB') => node(name, 'Gemm', [a, b], [out], [attr(trans, { int: 1 })]);

/** The graphs: covariance X → (Xc, XcᵀXc), covariance2 its blocks from column halves, pair both sides and YcᵀXc; gram X → XcXcᵀ, gram2 from row halves; cross A, B → AᵀB. */
function graphOf(kind: Kind): { nodes: NodeProto[]; inputs: [string, Dim[], number][]; outputs: string[] } {
  const x: [string, Dim[], number] = ['X', ['n', 'p'], ONNX_DTYPE.float32];
  switch (kind) {
    case 'covariance':
      return { nodes: [...centre('X'), gemm('xx', 'Xc', 'Xc', 'C', 'transA')], inputs: [x], outputs: ['Xc', 'C'] };
    case 'covariance2': {
      const halves = node('halves', 'Split', ['Xc', 'cols'], ['X1', 'X2'], [attr('axis', { int: 1 })]);
      const blocks = [gemm('c11', 'X1', 'X1', 'C11', 'transA'), gemm('c12', 'X1', 'X2', 'C12', 'transA'), gemm('c22', 'X2', 'X2', 'C22', 'transA')];
      return { nodes: [...centre('X'), halves, ...blocks], inputs: [x, ['cols', [2], ONNX_DTYPE.int64]], outputs: ['Xc', 'C11', 'C12', 'C22'] };
    }
    case 'pair': {
      // Both sides' covariance blocks from column halves and the cross product, in one run.
      const sides = ['X', 'Y'].flatMap((v) => [
        ...centre(v),
        node(`${v}_halves`, 'Split', [`${v}c`, `${v}cols`], [`${v}1`, `${v}2`], [attr('axis', { int: 1 })]),
        gemm(`${v}11`, `${v}1`, `${v}1`, `${v}${v}11`, 'transA'),
        gemm(`${v}12`, `${v}1`, `${v}2`, `${v}${v}12`, 'transA'),
        gemm(`${v}22`, `${v}2`, `${v}2`, `${v}${v}22`, 'transA'),
      ]);
      const cols: [string, Dim[], number][] = [['Xcols', [2], ONNX_DTYPE.int64], ['Ycols', [2], ONNX_DTYPE.int64]];
      return { nodes: [...sides, gemm('xy', 'Xc', 'Yc', 'XY', 'transA')], inputs: [x, ['Y', ['n', 'q'], ONNX_DTYPE.float32], ...cols], outputs: ['Xc', 'Yc', 'XX11', 'XX12', 'XX22', 'YY11', 'YY12', 'YY22', 'XY'] };
    }
    case 'gram':
      return { nodes: [...centre('X'), gemm('gram', 'Xc', 'Xc', 'K', 'transB')], inputs: [x], outputs: ['K'] };
    case 'gram2': {
      // K = [[X₁X₁ᵀ, X₁X₂ᵀ], [(X₁X₂ᵀ)ᵀ, X₂X₂ᵀ]]: three of the four block products (a symmetric rank-k update).
      const t = attr('perm', { ints: [1, 0] });
      const nodes = [
        ...centre('X'),
        node('halves', 'Split', ['Xc', 'rows'], ['X1', 'X2'], [attr('axis', { int: 0 })]),
        gemm('k11', 'X1', 'X1', 'K11', 'transB'),
        gemm('k12', 'X1', 'X2', 'K12', 'transB'),
        gemm('k22', 'X2', 'X2', 'K22', 'transB'),
        node('k21', 'Transpose', ['K12'], ['K21'], [t]),
        node('top', 'Concat', ['K11', 'K12'], ['Ktop'], [attr('axis', { int: 1 })]),
        node('bottom', 'Concat', ['K21', 'K22'], ['Kbottom'], [attr('axis', { int: 1 })]),
        node('k', 'Concat', ['Ktop', 'Kbottom'], ['K'], [attr('axis', { int: 0 })]),
      ];
      return { nodes, inputs: [x, ['rows', [2], ONNX_DTYPE.int64]], outputs: ['K'] };
    }
    case 'cross':
      return { nodes: [gemm('xy', 'A', 'B', 'C', 'transA')], inputs: [['A', ['n', 'p'], ONNX_DTYPE.float32], ['B', ['n', 'q'], ONNX_DTYPE.float32]], outputs: ['C'] };
  }
}

/** One cached session per runtime, graph and thread count. */
function session(runtime: Runtime, kind: Kind, threads?: number): Promise<RuntimeSession> {
  let byKey = sessions.get(runtime);
  if (!byKey) sessions.set(runtime, (byKey = new Map()));
  const key = `${kind}/${threads ?? 'all'}`;
  let s = byKey.get(key);
  if (!s) {
    const g = graphOf(kind);
    const graph = makeGraph({
      name: `cka_${kind}`,
      node: g.nodes,
      input: g.inputs.map(([name, shape, dtype]) => makeValueInfo(name, dtype, shape)),
      output: g.outputs.map((name) => makeValueInfo(name, ONNX_DTYPE.float32, [null, null])),
    });
    const model = makeModel({ irVersion: 8n, producerName: 'glassbox', opsetImport: [{ $typeName: 'onnx.OperatorSetIdProto', domain: '', version: 17n }], graph });
    s = runtime.createSession(encodeModel(model), { optimization: 'all', ...(threads === undefined ? {} : { threads }) });
    byKey.set(key, s);
  }
  return s;
}

/** What linear CKA needs of one representation X [n, p]. */
export interface LinearStats {
  readonly form: 'feature' | 'gram';
  readonly n: number;
  readonly p: number;
  /** The centred features Xc [n, p] (feature form). */
  readonly centred?: Tensor<'float32'>;
  /** The centred Gram matrix XcXcᵀ [n, n], row-major (Gram form). */
  readonly gram?: Float32Array;
  /** ‖XcᵀXc‖²_F = ‖XcXcᵀ‖²_F. */
  readonly self: number;
}

export interface GramOptions {
  readonly runtime?: Runtime;
  /** ONNX Runtime intra-op threads (default: all cores). */
  readonly threads?: number;
}

function sumSquares(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return s;
}

/** The centred covariance (feature form) or centred Gram matrix (Gram form) of X [n, p], and its squared norm. */
export async function linearStats(x: Tensor<'float32'>, form: 'feature' | 'gram', options: GramOptions = {}): Promise<LinearStats> {
  if (x.dtype !== 'float32' || x.shape.length !== 2) throw new Error(`linearStats: expected a float32 matrix [n, p], got ${x.dtype} [${x.shape}]`);
  const [n, p] = x.shape;
  const runtime = options.runtime ?? (await defaultRuntime());
  if (form === 'feature') {
    if (p >= SPLIT_COVARIANCE) {
      const out = await (await session(runtime, 'covariance2', options.threads)).run({ X: x, cols: halves(p) });
      const self = sumSquares(out.C11.data as Float32Array) + 2 * sumSquares(out.C12.data as Float32Array) + sumSquares(out.C22.data as Float32Array);
      return { form, n, p, centred: out.Xc as Tensor<'float32'>, self };
    }
    const out = await (await session(runtime, 'covariance', options.threads)).run({ X: x });
    return { form, n, p, centred: out.Xc as Tensor<'float32'>, self: sumSquares(out.C.data as Float32Array) };
  }
  const split = n >= SPLIT_GRAM;
  const feeds: Record<string, Tensor> = split ? { X: x, rows: Tensor.int64([n >> 1, n - (n >> 1)], [2]) } : { X: x };
  const k = (await (await session(runtime, split ? 'gram2' : 'gram', options.threads)).run(feeds)).K.data as Float32Array;
  return { form, n, p, gram: k, self: symmetricInner(k, k, n, null) };
}

const halves = (p: number) => Tensor.int64([p >> 1, p - (p >> 1)], [2]);

/** Feature-form statistics of X [n, p] and Y [n, q] (p, q ≥ 2) and their cross term ‖YcᵀXc‖²_F, from one graph run. */
export async function featurePair(x: Tensor<'float32'>, y: Tensor<'float32'>, options: GramOptions = {}): Promise<{ x: LinearStats; y: LinearStats; cross: number }> {
  const [n, p] = x.shape;
  const q = y.shape[1];
  if (y.shape[0] !== n || p < 2 || q < 2) throw new Error(`featurePair: expected [n, p] and [n, q] with the same n and p, q ≥ 2, got [${x.shape}] and [${y.shape}]`);
  const out = await (await session(options.runtime ?? (await defaultRuntime()), 'pair', options.threads)).run({ X: x, Y: y, Xcols: halves(p), Ycols: halves(q) });
  const blocks = (v: string) => sumSquares(out[`${v}11`].data as Float32Array) + 2 * sumSquares(out[`${v}12`].data as Float32Array) + sumSquares(out[`${v}22`].data as Float32Array);
  return {
    x: { form: 'feature', n, p, centred: out.Xc as Tensor<'float32'>, self: blocks('XX') },
    y: { form: 'feature', n, p: q, centred: out.Yc as Tensor<'float32'>, self: blocks('YY') },
    cross: sumSquares(out.XY.data as Float32Array),
  };
}

/** ‖YcᵀXc‖²_F (= ⟨K, L⟩) of two representations of the same n inputs, Y's rows permuted by `perm` (null: none). */
export async function crossNorm2(a: LinearStats, b: LinearStats, perm: Int32Array | null = null, options: GramOptions = {}): Promise<number> {
  if (a.n !== b.n) throw new Error(`crossNorm2: ${a.n} and ${b.n} rows; both must describe the same inputs`);
  if (a.gram && b.gram) return symmetricInner(a.gram, b.gram, a.n, perm);
  if (!a.centred || !b.centred) throw new Error('crossNorm2: pair a Gram-form representation with another in Gram form (LinearStats.gram)');
  const y = perm ? permuteRows(b.centred, perm) : b.centred;
  const out = await (await session(options.runtime ?? (await defaultRuntime()), 'cross', options.threads)).run({ A: a.centred, B: y });
  return sumSquares(out.C.data as Float32Array);
}

/** ⟨K, L_π⟩ for symmetric n × n K, L (L's rows and columns permuted by π): the diagonal plus twice the upper triangle. */
export function symmetricInner(k: Float32Array, l: Float32Array, n: number, perm: Int32Array | null): number {
  let diag = 0;
  let upper = 0;
  for (let i = 0; i < n; i++) {
    const row = i * n;
    if (perm) {
      const pr = perm[i] * n;
      diag += k[row + i] * l[pr + perm[i]];
      for (let j = i + 1; j < n; j++) upper += k[row + j] * l[pr + perm[j]];
    } else {
      diag += k[row + i] * l[row + i];
      for (let j = i + 1; j < n; j++) upper += k[row + j] * l[row + j];
    }
  }
  return diag + 2 * upper;
}

export function permuteRows(x: Tensor<'float32'>, perm: Int32Array): Tensor<'float32'> {
  const [n, p] = x.shape;
  const src = x.data as Float32Array;
  const out = new Float32Array(n * p);
  for (let i = 0; i < n; i++) out.set(src.subarray(perm[i] * p, perm[i] * p + p), i * p);
  return Tensor.float32(out, [n, p]);
}

/** One representation, with what the measures derive from it (centred copy, covariances, Gram matrices) computed once. */
export class Representation {
  readonly n: number;
  readonly p: number;
  private readonly raw: Float32Array;
  private centredX?: Tensor<'float32'>;
  private cache = new Map<string, Promise<Float64Array>>();
  private linearCache = new Map<'feature' | 'gram', Promise<LinearStats>>();

  constructor(
    private readonly input: Tensor,
    readonly runtime?: Runtime,
    name = 'representation',
    /** ONNX Runtime intra-op threads for the products (default: all cores). */
    readonly threads?: number,
  ) {
    if (input.dtype !== 'float32' || input.shape.length !== 2) throw new Error(`${name}: expected a float32 matrix [n, p], got ${input.dtype} [${input.shape}]`);
    const d = input.data as Float32Array;
    let sum = 0; // a float64 sum of float32 values is finite exactly when every value is
    for (let i = 0; i < d.length; i++) sum += d[i];
    if (!Number.isFinite(sum)) for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i])) throw new Error(`${name}: value ${i} (row ${Math.floor(i / input.shape[1])}) is ${d[i]}`);
    [this.n, this.p] = input.shape;
    if (this.n < 4) throw new Error(`${name}: need at least 4 examples, got ${this.n}`);
    this.raw = d;
  }

  /** X with its columns centred (host, float64 means). */
  get x(): Tensor<'float32'> {
    return (this.centredX ??= centreColumns(this.input as Tensor<'float32'>));
  }

  /** Linear CKA's statistics of X in the feature form (centred X and ‖XᵀX‖²) or the Gram form (centred XXᵀ), by ONNX Runtime. */
  linear(form: 'feature' | 'gram'): Promise<LinearStats> {
    let v = this.linearCache.get(form);
    if (!v) this.linearCache.set(form, (v = linearStats(this.input as Tensor<'float32'>, form, { runtime: this.runtime, threads: this.threads })));
    return v;
  }

  /** ‖YᵀX‖²_F with `other` as Y, both sides' feature-form statistics computed in the same graph run when neither has them yet. */
  async crossFeature(other: Representation): Promise<{ cross: number; self: number; otherSelf: number }> {
    if (this.linearCache.has('feature') || other.linearCache.has('feature') || other === this || Math.min(this.p, other.p) < 2) {
      const [a, b] = await Promise.all([this.linear('feature'), other.linear('feature')]);
      return { cross: await crossNorm2(a, b, null, { runtime: this.runtime, threads: this.threads }), self: a.self, otherSelf: b.self };
    }
    const both = featurePair(this.input as Tensor<'float32'>, other.input as Tensor<'float32'>, { runtime: this.runtime, threads: this.threads });
    this.linearCache.set('feature', both.then((r) => r.x));
    other.linearCache.set('feature', both.then((r) => r.y));
    const r = await both;
    return { cross: r.cross, self: r.x.self, otherSelf: r.y.self };
  }

  private memo(key: string, f: () => Promise<Float64Array>): Promise<Float64Array> {
    let v = this.cache.get(key);
    if (!v) this.cache.set(key, (v = f()));
    return v;
  }

  /** XᵀX of the centred X [p, p]. */
  covariance(): Promise<Float64Array> {
    return this.memo('xx', () => crossProduct(this.x, this.x, this.runtime));
  }

  /** The centred linear Gram matrix XXᵀ [n, n]. */
  gram(): Promise<Float64Array> {
    return this.memo('gram', () => gramProduct(this.x, this.x, this.runtime));
  }

  /** The centred RBF Gram matrix HKH, K = exp(−d²/(2σ²)), σ = bandwidth × median pairwise distance. */
  rbf(bandwidth: number): Promise<Float64Array> {
    return this.memo(`rbf${bandwidth}`, async () => {
      const g = await this.gram();
      const n = this.n;
      const d2 = new Float64Array(n * n);
      const off: number[] = [];
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) d2[i * n + j] = Math.max(0, g[i * n + i] + g[j * n + j] - 2 * g[i * n + j]);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off.push(d2[i * n + j]);
      const med = median(off);
      if (!(med > 0)) throw new Error('RBF CKA: the median pairwise distance is 0 (most rows equal)');
      const k = d2.map((v) => Math.exp(-v / (2 * bandwidth * bandwidth * med)));
      return doubleCentre(k, n);
    });
  }

  /** RSA's dissimilarity matrix: 1 − Pearson correlation between the rows (examples) [n, n]. */
  rdm(): Promise<Float64Array> {
    return this.memo('rdm', async () => {
      const { n, p } = this;
      const src = this.raw;
      const z = new Float32Array(n * p);
      for (let i = 0; i < n; i++) {
        let m = 0;
        for (let j = 0; j < p; j++) m += src[i * p + j];
        m /= p;
        let ss = 0;
        for (let j = 0; j < p; j++) ss += (src[i * p + j] - m) ** 2;
        const s = ss > 0 ? 1 / Math.sqrt(ss) : 0;
        for (let j = 0; j < p; j++) z[i * p + j] = (src[i * p + j] - m) * s;
      }
      const zt = Tensor.float32(z, [n, p]);
      return (await gramProduct(zt, zt, this.runtime)).map((c) => 1 - c);
    });
  }
}

/** HKH for a symmetric n × n K (H = I − 11ᵀ/n). */
export function doubleCentre(k: Float64Array, n: number): Float64Array {
  const row = new Float64Array(n);
  let all = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) row[i] += k[i * n + j];
    all += row[i];
    row[i] /= n;
  }
  all /= n * n;
  return k.map((v, ij) => v - row[Math.floor(ij / n)] - row[ij % n] + all);
}

function median(v: number[]): number {
  const s = Float64Array.from(v).sort();
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
