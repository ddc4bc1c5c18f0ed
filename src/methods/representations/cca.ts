/**
 * The linear algebra under representation similarity: the large products (AᵀB of two activation matrices [n, p],
 * ABᵀ Gram matrices [n, n]) run as ONNX MatMul graphs in ONNX Runtime; the small p × p eigen-problems run on the host
 * (`tridiagonalEigen`). On top: CCA's canonical correlations, SVCCA (Raghu et al. 2017), PWCCA (Morcos et al. 2018) and
 * the orthogonal Procrustes distance (Ding et al. 2021), all from the centred moments XᵀX, YᵀY, XᵀY.
 */
import { makeGraph, makeModel, makeNode, makeValueInfo, encodeModel, attr } from '../../onnx/proto.js';
import { ONNX_DTYPE } from '../../onnx/tensor-proto.js';
import { defaultRuntime } from '../../runtime/default.js';
import type { Runtime, RuntimeSession } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';
import { tridiagonalEigen } from '../subnetworks/spectral.js';

type Product = 'tn' | 'nt';
const sessions = new Map<Runtime, Map<Product, Promise<RuntimeSession>>>();

/** AᵀB ('tn': [n,p]ᵀ[n,q] → [p,q]) or ABᵀ ('nt': [n,p][m,p]ᵀ → [n,m]) as a one-node ONNX graph (cached session). */
function session(runtime: Runtime, kind: Product): Promise<RuntimeSession> {
  let byKind = sessions.get(runtime);
  if (!byKind) sessions.set(runtime, (byKind = new Map()));
  let s = byKind.get(kind);
  if (!s) {
    // Gemm with a transposed operand: MLAS reads A (or B) transposed in place, no copy of the [n, p] matrix.
    const graph = makeGraph({
      name: `gram_${kind}`,
      node: [makeNode('Gemm', ['A', 'B'], ['C'], { name: 'gemm', attributes: [attr(kind === 'tn' ? 'transA' : 'transB', { int: 1 })] })],
      input: [makeValueInfo('A', ONNX_DTYPE.float32, ['n', 'p']), makeValueInfo('B', ONNX_DTYPE.float32, kind === 'tn' ? ['n', 'q'] : ['m', 'p'])],
      output: [makeValueInfo('C', ONNX_DTYPE.float32, [null, null])],
    });
    const model = makeModel({ irVersion: 8n, producerName: 'glassbox', opsetImport: [{ $typeName: 'onnx.OperatorSetIdProto', domain: '', version: 17n }], graph });
    s = runtime.createSession(encodeModel(model), { optimization: 'all' });
    byKind.set(kind, s);
  }
  return s;
}

/** AᵀB in float64 on the host, computed by ONNX Runtime: A [n, p], B [n, q] → [p, q] row-major. */
export async function crossProduct(a: Tensor<'float32'>, b: Tensor<'float32'>, runtime?: Runtime): Promise<Float64Array> {
  if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[0] !== b.shape[0]) throw new Error(`crossProduct: expected [n, p] and [n, q] with the same n, got [${a.shape}] and [${b.shape}]`);
  const out = await (await session(runtime ?? (await defaultRuntime()), 'tn')).run({ A: a, B: b });
  return Float64Array.from(out.C.data as Float32Array);
}

/** ABᵀ: A [n, p], B [m, p] → [n, m] (a Gram matrix when B = A), by ONNX Runtime. */
export async function gramProduct(a: Tensor<'float32'>, b: Tensor<'float32'>, runtime?: Runtime): Promise<Float64Array> {
  if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== b.shape[1]) throw new Error(`gramProduct: expected [n, p] and [m, p] with the same p, got [${a.shape}] and [${b.shape}]`);
  const out = await (await session(runtime ?? (await defaultRuntime()), 'nt')).run({ A: a, B: b });
  return Float64Array.from(out.C.data as Float32Array);
}

/** Columns centred to mean 0 (float64 means, float32 result). */
export function centreColumns(x: Tensor<'float32'>): Tensor<'float32'> {
  const [n, p] = x.shape;
  const src = x.data as Float32Array;
  const mean = new Float64Array(p);
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) mean[j] += src[i * p + j];
  for (let j = 0; j < p; j++) mean[j] /= n;
  const out = new Float32Array(n * p);
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) out[i * p + j] = src[i * p + j] - mean[j];
  return Tensor.float32(out, [n, p]);
}

/** C = A B for row-major A [r, k], B [k, c] (host, for p × p work). */
export function matmul(a: Float64Array, b: Float64Array, r: number, k: number, c: number): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) {
    for (let l = 0; l < k; l++) {
      const v = a[i * k + l];
      if (v === 0) continue;
      for (let j = 0; j < c; j++) out[i * c + j] += v * b[l * c + j];
    }
  }
  return out;
}

export function transpose(a: Float64Array, r: number, c: number): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j];
  return out;
}

/** Eigenpairs of a symmetric matrix, largest first (values, and vectors as columns of a row-major p × p). */
export function eigenDescending(s: Float64Array, p: number): { values: Float64Array; vectors: Float64Array } {
  const sym = new Float64Array(p * p);
  for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) sym[i * p + j] = (s[i * p + j] + s[j * p + i]) / 2;
  const e = tridiagonalEigen(sym, p);
  const values = new Float64Array(p);
  const vectors = new Float64Array(p * p);
  for (let k = 0; k < p; k++) {
    const src = p - 1 - k;
    values[k] = e.values[src];
    for (let i = 0; i < p; i++) vectors[i * p + k] = e.vectors[i * p + src];
  }
  return { values, vectors };
}

/** The centred moments of a pair of representations: XᵀX [p,p], YᵀY [q,q], XᵀY [p,q]. */
export interface Moments {
  readonly p: number;
  readonly q: number;
  readonly xx: Float64Array;
  readonly yy: Float64Array;
  readonly xy: Float64Array;
}

/** S^{-1/2} on the span of eigenvalues above `eps`·max (a pseudo-inverse square root), and that rank. */
function inverseSqrt(s: Float64Array, p: number, eps: number): { m: Float64Array; rank: number } {
  const { values, vectors } = eigenDescending(s, p);
  const cut = Math.max(values[0], 0) * eps;
  const m = new Float64Array(p * p);
  let rank = 0;
  for (let k = 0; k < p; k++) {
    if (!(values[k] > cut) || values[k] <= 0) continue;
    rank++;
    const w = 1 / Math.sqrt(values[k]);
    for (let i = 0; i < p; i++) {
      const vi = vectors[i * p + k] * w;
      if (vi === 0) continue;
      for (let j = 0; j < p; j++) m[i * p + j] += vi * vectors[j * p + k];
    }
  }
  return { m, rank };
}

export interface CanonicalCorrelations {
  /** Canonical correlations ρ₁ ≥ ρ₂ ≥ … (min of the two ranks of them). */
  readonly rho: Float64Array;
  /** Mean canonical correlation (the CCA similarity of Raghu et al.). */
  readonly mean: number;
  /** Projection-weighted mean (Morcos et al. 2018): weights Σⱼ |⟨hᵢ, xⱼ⟩| of X's canonical variates hᵢ. */
  readonly pwcca: number;
}

/**
 * CCA from centred moments: ρ are the singular values of Σxx^{-1/2} Σxy Σyy^{-1/2} (Hotelling 1936); directions
 * with variance below `eps`·max are dropped (a rank-deficient side is whitened on its span).
 */
export function canonicalCorrelations(m: Moments, eps = 1e-6): CanonicalCorrelations {
  const { p, q } = m;
  const ix = inverseSqrt(m.xx, p, eps);
  const iy = inverseSqrt(m.yy, q, eps);
  const k = Math.min(ix.rank, iy.rank);
  if (k === 0) throw new Error('CCA: one representation has no variance (all rows equal)');
  const t = matmul(matmul(ix.m, m.xy, p, p, q), iy.m, p, q, q); // [p, q]
  const { values, vectors } = eigenDescending(matmul(t, transpose(t, p, q), p, q, p), p); // T Tᵀ: ρ², X-side vectors
  const rho = new Float64Array(k);
  for (let i = 0; i < k; i++) rho[i] = Math.min(1, Math.sqrt(Math.max(0, values[i])));
  // Canonical directions of X: aᵢ = Σxx^{-1/2} uᵢ (unit-norm variates hᵢ = Xc aᵢ); ⟨hᵢ, xⱼ⟩ = (Σxx aᵢ)ⱼ.
  const a = matmul(ix.m, vectors, p, p, p);
  const sa = matmul(m.xx, a, p, p, p);
  let num = 0;
  let den = 0;
  for (let i = 0; i < k; i++) {
    let w = 0;
    for (let j = 0; j < p; j++) w += Math.abs(sa[j * p + i]);
    num += w * rho[i];
    den += w;
  }
  const mean = rho.reduce((s, v) => s + v, 0) / k;
  return { rho, mean, pwcca: den > 0 ? num / den : mean };
}

/** The top principal directions of Σ [p, p] that explain `fraction` of the variance: their count and [p, k] basis. */
export function principalBasis(s: Float64Array, p: number, fraction: number): { k: number; basis: Float64Array; values: Float64Array } {
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`SVCCA: variance fraction must be in (0, 1], got ${fraction}`);
  const { values, vectors } = eigenDescending(s, p);
  const total = values.reduce((acc, v) => acc + Math.max(v, 0), 0);
  let k = 0;
  for (let acc = 0; k < p && acc < fraction * total * (1 - 1e-12); k++) acc += Math.max(values[k], 0);
  k = Math.max(k, 1);
  const basis = new Float64Array(p * k);
  for (let i = 0; i < p; i++) for (let j = 0; j < k; j++) basis[i * k + j] = vectors[i * p + j];
  return { k, basis, values: values.slice(0, k) };
}

/** Moments projected onto principal bases of X ([p, kx]) and Y ([q, ky]): SVCCA's reduced representations. */
export function projectMoments(m: Moments, bx: { k: number; basis: Float64Array; values: Float64Array }, by: { k: number; basis: Float64Array; values: Float64Array }): Moments {
  const diag = (v: Float64Array) => {
    const d = new Float64Array(v.length * v.length);
    v.forEach((x, i) => (d[i * v.length + i] = x));
    return d;
  };
  const xy = matmul(matmul(transpose(bx.basis, m.p, bx.k), m.xy, bx.k, m.p, m.q), by.basis, bx.k, m.q, by.k);
  return { p: bx.k, q: by.k, xx: diag(bx.values), yy: diag(by.values), xy };
}

/**
 * Orthogonal Procrustes distance (Ding et al. 2021, after Schönemann 1966) between centred representations scaled to
 * unit Frobenius norm: min over orthogonal Q of ‖X − YQ‖²_F = 2 − 2‖XᵀY‖_* (nuclear norm), in [0, 2].
 */
export function procrustesDistance(m: Moments): number {
  const nx = Math.sqrt(trace(m.xx, m.p));
  const ny = Math.sqrt(trace(m.yy, m.q));
  if (nx === 0 || ny === 0) throw new Error('Procrustes: one representation has no variance (all rows equal)');
  const small = m.p <= m.q;
  const g = small ? matmul(m.xy, transpose(m.xy, m.p, m.q), m.p, m.q, m.p) : matmul(transpose(m.xy, m.p, m.q), m.xy, m.q, m.p, m.q);
  const { values } = eigenDescending(g, small ? m.p : m.q);
  const nuclear = values.reduce((s, v) => s + Math.sqrt(Math.max(v, 0)), 0) / (nx * ny);
  return Math.max(0, 2 - 2 * nuclear);
}

export function trace(s: Float64Array, p: number): number {
  let t = 0;
  for (let i = 0; i < p; i++) t += s[i * p + i];
  return t;
}

/** Spearman's ρ: Pearson correlation of the ranks (ties get their mean rank). */
export function spearman(u: ArrayLike<number>, v: ArrayLike<number>): number {
  return pearson(ranks(u), ranks(v));
}

function ranks(u: ArrayLike<number>): Float64Array {
  const ix = Array.from({ length: u.length }, (_, i) => i).sort((a, b) => u[a] - u[b]);
  const r = new Float64Array(u.length);
  for (let s = 0; s < ix.length; ) {
    let e = s;
    while (e + 1 < ix.length && u[ix[e + 1]] === u[ix[s]]) e++;
    for (let k = s; k <= e; k++) r[ix[k]] = (s + e) / 2 + 1;
    s = e + 1;
  }
  return r;
}

export function pearson(u: ArrayLike<number>, v: ArrayLike<number>): number {
  const n = u.length;
  let mu = 0;
  let mv = 0;
  for (let i = 0; i < n; i++) {
    mu += u[i];
    mv += v[i];
  }
  mu /= n;
  mv /= n;
  let uv = 0;
  let uu = 0;
  let vv = 0;
  for (let i = 0; i < n; i++) {
    uv += (u[i] - mu) * (v[i] - mv);
    uu += (u[i] - mu) ** 2;
    vv += (v[i] - mv) ** 2;
  }
  return uu > 0 && vv > 0 ? uv / Math.sqrt(uu * vv) : 0;
}
