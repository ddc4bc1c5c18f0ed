/**
 * Representation similarity between activation matrices X [n, p₁], Y [n, p₂] of the same n inputs: linear and RBF CKA
 * (Kornblith et al. 2019), unbiased HSIC (Song et al. 2012) and minibatch CKA (Nguyen et al. 2021), CCA / SVCCA
 * (Raghu et al. 2017) / PWCCA (Morcos et al. 2018), RSA (Kriegeskorte et al. 2008) and the orthogonal Procrustes
 * distance (Ding et al. 2021). Every score comes with a permutation baseline: the score of unrelated representations
 * (Y's rows shuffled), over seeded permutations.
 *
 * @example
 * const r = await similarity(x, y, 'cka'); // r.value, r.baseline.mean, r.checks
 */
import { permutation } from '../../data/datasets/random.js';
import type { Runtime } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { passive, RAUKER_V, type MethodInfo } from '../taxonomy.js';
import { canonicalCorrelations, crossProduct, gramProduct, principalBasis, procrustesDistance, projectMoments, spearman, type Moments } from './cca.js';
import { activations, stitch, type ActivationOptions } from './stitching.js';
import { crossNorm2, permuteRows, Representation } from './gram.js';

export { doubleCentre, Representation } from './gram.js';
import type { Model } from '../../model/model.js';
import type { Dataset } from '../../data/datasets/dataset.js';

export type Measure = 'cka' | 'cka-rbf' | 'cca' | 'svcca' | 'pwcca' | 'rsa' | 'procrustes';
export const MEASURES: readonly Measure[] = ['cka', 'cka-rbf', 'cca', 'svcca', 'pwcca', 'rsa', 'procrustes'];

export interface SimilarityOptions {
  /** Shuffles of Y's rows for the baseline (default 10; 0 skips it). */
  readonly permutations?: number;
  readonly seed?: number;
  /** Linear CKA: feature-space form ‖YᵀX‖²_F/(‖XᵀX‖_F‖YᵀY‖_F) or Gram form; 'auto': feature form unless a side is wider than n. */
  readonly form?: 'auto' | 'feature' | 'gram';
  /** RBF CKA: σ as this fraction of the median pairwise distance (default 0.8, as Kornblith et al.). */
  readonly bandwidth?: number;
  /** SVCCA: the fraction of variance kept by the SVD step (default 0.99). */
  readonly variance?: number;
  readonly runtime?: Runtime;
  /** ONNX Runtime intra-op threads for linear CKA's products (default: all cores). */
  readonly threads?: number;
}

export interface SimilarityResult {
  readonly measure: Measure;
  /** The score; for 'procrustes' a distance (0 = identical up to rotation), for the others a similarity. */
  readonly value: number;
  /** Scores of Y with its rows shuffled: their mean and the 95% bound on the similar side (95th percentile, 5th for a distance). */
  readonly baseline: { readonly mean: number; readonly bound: number; readonly values: readonly number[] };
  readonly n: number;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
}

/** ⟨K, L_π⟩ / (‖K‖‖L‖) with L's rows and columns permuted by π (null: identity): CKA of centred Gram matrices. */
function alignment(k: Float64Array, l: Float64Array, n: number, perm: Int32Array | null): number {
  let kl = 0;
  let kk = 0;
  let ll = 0;
  for (let i = 0; i < n; i++) {
    const pi = perm ? perm[i] : i;
    for (let j = 0; j < n; j++) {
      const kv = k[i * n + j];
      const lv = l[pi * n + (perm ? perm[j] : j)];
      kl += kv * lv;
      kk += kv * kv;
      ll += lv * lv;
    }
  }
  return kl / Math.sqrt(kk * ll);
}

async function moments(a: Representation, b: Representation, perm: Int32Array | null): Promise<Moments> {
  const [xx, yy, xy] = await Promise.all([a.covariance(), b.covariance(), crossProduct(a.x, perm ? permuteRows(b.x, perm) : b.x, a.runtime)]);
  return { p: a.p, q: b.p, xx, yy, xy };
}

/** The linear CKA form of a pair: 'auto' uses the feature form when neither side is wider than n (or n is too large for Gram matrices), else Gram matrices. */
export function ckaForm(n: number, p: number, q: number, form: SimilarityOptions['form'] = 'auto'): 'feature' | 'gram' {
  return form === 'auto' ? ((p <= n && q <= n) || n > MAX_GRAM ? 'feature' : 'gram') : form;
}

type Scorer = (a: Representation, b: Representation, perm: Int32Array | null, o: SimilarityOptions) => Promise<number>;

/** Each measure: how it scores a pair (Y's rows permuted by perm) and which way is similar. */
const SCORERS: Record<Measure, { score: Scorer; distance?: boolean }> = {
  cka: {
    // Kornblith et al.: ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F), each side's products computed once and reused across pairs.
    score: async (a, b, perm, o) => {
      const form = ckaForm(a.n, a.p, b.p, o.form);
      if (form === 'feature' && !perm) {
        const r = await a.crossFeature(b);
        return r.cross / Math.sqrt(r.self * r.otherSelf);
      }
      const [sa, sb] = await Promise.all([a.linear(form), b.linear(form)]);
      return (await crossNorm2(sa, sb, perm, { runtime: a.runtime, threads: a.threads })) / Math.sqrt(sa.self * sb.self);
    },
  },
  'cka-rbf': { score: async (a, b, perm, o) => alignment(await a.rbf(o.bandwidth ?? 0.8), await b.rbf(o.bandwidth ?? 0.8), a.n, perm) },
  cca: { score: async (a, b, perm) => canonicalCorrelations(await moments(a, b, perm)).mean },
  pwcca: { score: async (a, b, perm) => canonicalCorrelations(await moments(a, b, perm)).pwcca },
  svcca: {
    score: async (a, b, perm, o) => {
      const m = await moments(a, b, perm);
      const f = o.variance ?? 0.99;
      return canonicalCorrelations(projectMoments(m, principalBasis(m.xx, m.p, f), principalBasis(m.yy, m.q, f))).mean;
    },
  },
  rsa: { score: async (a, b, perm) => rdmSpearman(await a.rdm(), await b.rdm(), a.n, perm) },
  procrustes: { score: async (a, b, perm) => procrustesDistance(await moments(a, b, perm)), distance: true },
};

/** Spearman correlation between the upper triangles of two RDMs (the second with rows/columns permuted). */
function rdmSpearman(ra: Float64Array, rb: Float64Array, n: number, perm: Int32Array | null): number {
  const m = (n * (n - 1)) / 2;
  const u = new Float64Array(m);
  const v = new Float64Array(m);
  let t = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++, t++) {
      u[t] = ra[i * n + j];
      v[t] = perm ? rb[perm[i] * n + perm[j]] : rb[i * n + j];
    }
  }
  return spearman(u, v);
}

/** Limits of the host work: p × p eigen-problems and n × n Gram matrices (float64). */
const MAX_FEATURES = 1024;
const MAX_GRAM = 5000;

/** The score of a pair of representations with its permutation baseline (the pair may be reused across calls). */
export async function compare(a: Representation, b: Representation, measure: Measure, options: SimilarityOptions = {}): Promise<SimilarityResult> {
  const s = SCORERS[measure as Measure];
  if (!s) throw new Error(`unknown similarity measure '${measure}' (known: ${MEASURES.join(', ')})`);
  if (a.n !== b.n) throw new Error(`${measure}: X has ${a.n} rows and Y ${b.n}; both must describe the same inputs`);
  const permutations = options.permutations ?? 10;
  if (!Number.isInteger(permutations) || permutations < 0) throw new Error(`${measure}: permutations must be a non-negative integer, got ${permutations}`);
  if (options.bandwidth !== undefined && !(options.bandwidth > 0)) throw new Error(`cka-rbf: bandwidth must be > 0, got ${options.bandwidth}`);
  const big = Math.max(a.p, b.p);
  if (['cca', 'svcca', 'pwcca', 'procrustes'].includes(measure) && big > MAX_FEATURES) throw new Error(`${measure}: ${big} features is too many for the host eigen-solver (at most ${MAX_FEATURES}); pool the site ('mean') or use linear CKA`);
  const gramForm = measure === 'rsa' || measure === 'cka-rbf' || (measure === 'cka' && ckaForm(a.n, a.p, b.p, options.form) === 'gram');
  if (gramForm && a.n > MAX_GRAM) throw new Error(`${measure}: ${a.n} examples need ${a.n} × ${a.n} Gram matrices (at most ${MAX_GRAM}); use minibatchCka or fewer examples`);
  const value = await s.score(a, b, null, options);
  const values: number[] = [];
  for (let k = 0; k < permutations; k++) values.push(await s.score(a, b, permutation(a.n, (options.seed ?? 0) * 1000 + k + 1), options));
  const sorted = [...values].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  const bound = values.length ? (s.distance ? at(0.05) : at(0.95)) : NaN;
  const mean = values.length ? values.reduce((x, y) => x + y, 0) / values.length : NaN;
  const checks: Check[] = [
    {
      name: 'permutation baseline',
      value: [mean, bound],
      passed: values.length ? (s.distance ? value < bound : value > bound) : undefined,
      detail: `${measure} = ${value.toFixed(4)} vs Y's rows shuffled (${permutations}×): mean ${mean.toFixed(4)}, ${s.distance ? '5th' : '95th'} percentile ${bound.toFixed(4)}`,
    },
  ];
  if (measure === 'cca' || measure === 'pwcca' || measure === 'svcca') {
    const ratio = a.n / Math.max(a.p, b.p);
    checks.push({ name: 'examples per feature', value: ratio, passed: ratio >= 2, detail: `n/p = ${ratio.toFixed(2)}: CCA overfits when n is not well above p (the baseline shows by how much)` });
  }
  const params = { permutations, seed: options.seed ?? 0, ...(measure === 'cka' ? { form: ckaForm(a.n, a.p, b.p, options.form) } : {}), ...(measure === 'cka-rbf' ? { bandwidth: options.bandwidth ?? 0.8 } : {}), ...(measure === 'svcca' ? { variance: options.variance ?? 0.99 } : {}) };
  return { measure, value, baseline: { mean, bound, values }, n: a.n, checks, params };
}

/** The similarity of X [n, p₁] and Y [n, p₂] (float32, rows = the same inputs) by `measure`, with its baseline. */
export async function similarity(x: Tensor, y: Tensor, measure: Measure, options: SimilarityOptions = {}): Promise<SimilarityResult> {
  return compare(new Representation(x, options.runtime, 'X', options.threads), new Representation(y, options.runtime, 'Y', options.threads), measure, options);
}

/**
 * The unbiased HSIC estimator of Song et al. (2012) on kernel matrices K, L [n, n] (n ≥ 4; diagonals ignored):
 * [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3)).
 */
export function unbiasedHsic(k: ArrayLike<number>, l: ArrayLike<number>, n: number): number {
  if (!(n >= 4) || k.length !== n * n || l.length !== n * n) throw new Error(`unbiasedHsic: need n ≥ 4 and two n × n matrices (n = ${n}, got ${k.length} and ${l.length} values)`);
  let tr = 0;
  let sk = 0;
  let sl = 0;
  let skl = 0;
  const rk = new Float64Array(n);
  const rl = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const a = k[i * n + j];
      const b = l[i * n + j];
      tr += a * b;
      rk[i] += a;
      rl[i] += b;
    }
    sk += rk[i];
    sl += rl[i];
    skl += rk[i] * rl[i]; // 1ᵀK̃L̃1 = Σᵢ (K̃1)ᵢ(L̃1)ᵢ for symmetric K̃
  }
  return (tr + (sk * sl) / ((n - 1) * (n - 2)) - (2 / (n - 2)) * skl) / (n * (n - 3));
}

/**
 * Minibatch linear CKA (Nguyen et al. 2021): Σ HSIC₁(K_b, L_b) / √(Σ HSIC₁(K_b, K_b) Σ HSIC₁(L_b, L_b)) over batches of
 * paired activations, so n is never held at once; the baseline shuffles Y's rows within each batch.
 */
export async function minibatchCka(batches: AsyncIterable<readonly [Tensor, Tensor]> | Iterable<readonly [Tensor, Tensor]>, options: { seed?: number; runtime?: Runtime } = {}): Promise<SimilarityResult> {
  let kl = 0;
  let kk = 0;
  let ll = 0;
  let shuffled = 0;
  let n = 0;
  let b = 0;
  for await (const [x, y] of batches) {
    const a = new Representation(x, options.runtime, `batch ${b} X`);
    const c = new Representation(y, options.runtime, `batch ${b} Y`);
    if (a.n !== c.n) throw new Error(`minibatchCka: batch ${b} has ${a.n} rows of X and ${c.n} of Y`);
    const [gk, gl] = [await gramProduct(x as Tensor<'float32'>, x as Tensor<'float32'>, options.runtime), await gramProduct(y as Tensor<'float32'>, y as Tensor<'float32'>, options.runtime)];
    const perm = permutation(a.n, (options.seed ?? 0) * 1000 + b + 1);
    const glp = new Float64Array(a.n * a.n);
    for (let i = 0; i < a.n; i++) for (let j = 0; j < a.n; j++) glp[i * a.n + j] = gl[perm[i] * a.n + perm[j]];
    kl += unbiasedHsic(gk, gl, a.n);
    kk += unbiasedHsic(gk, gk, a.n);
    ll += unbiasedHsic(gl, gl, a.n);
    shuffled += unbiasedHsic(gk, glp, a.n);
    n += a.n;
    b++;
  }
  if (b === 0) throw new Error('minibatchCka: no batches');
  const value = kl / Math.sqrt(kk * ll);
  const base = shuffled / Math.sqrt(kk * ll);
  const checks: Check[] = [{ name: 'permutation baseline', value: [base, base], passed: value > base, detail: `minibatch CKA ${value.toFixed(4)} vs ${base.toFixed(4)} with Y's rows shuffled within each of ${b} batches` }];
  return { measure: 'cka', value, baseline: { mean: base, bound: base, values: [base] }, n, checks, params: { batches: b, estimator: 'unbiased HSIC (Song et al. 2012)' } };
}

export interface LayerSimilarityOptions extends SimilarityOptions, ActivationOptions {
  readonly sitesA: readonly string[];
  /** Default: sitesA (for the same architecture, or B = A). */
  readonly sitesB?: readonly string[];
  /** Default 'cka'. */
  readonly measure?: Measure;
}

export interface LayerSimilarity {
  readonly measure: Measure;
  readonly sitesA: readonly string[];
  readonly sitesB: readonly string[];
  /** values[i][j]: the score of A's sitesA[i] against B's sitesB[j]. */
  readonly values: readonly (readonly number[])[];
  /** The permutation baseline's 95% bound of each cell (NaN with permutations: 0). */
  readonly bounds: readonly (readonly number[])[];
  readonly n: number;
  readonly checks: readonly Check[];
}

/**
 * The layer × layer similarity matrix of two models (or one, with modelB = modelA) on the same inputs, activations
 * captured batch by batch. Checks: the fraction of A's layers whose most similar layer of B is the same position
 * (Kornblith et al.'s sanity test, when both lists are equally long) and the fraction of cells above their baseline.
 */
export async function layerSimilarity(modelA: Model, modelB: Model, data: Dataset, options: LayerSimilarityOptions): Promise<LayerSimilarity> {
  const measure = options.measure ?? 'cka';
  if (!SCORERS[measure]) throw new Error(`unknown similarity measure '${measure}' (known: ${MEASURES.join(', ')})`);
  const sitesA = options.sitesA;
  const sitesB = options.sitesB ?? sitesA;
  if (!sitesA.length || !sitesB.length) throw new Error('layerSimilarity: give at least one site for each model');
  const actsA = await activations(modelA, data, sitesA, options, "model A's activations");
  const actsB = modelB === modelA && sitesB.every((s) => sitesA.includes(s)) ? actsA : await activations(modelB, data, sitesB, options, "model B's activations");
  const reps = new Map<Tensor, Representation>();
  const rep = (t: Tensor, name: string) => reps.get(t) ?? (reps.set(t, new Representation(t, options.runtime, name, options.threads)), reps.get(t)!);
  const o = { permutations: 5, ...options };
  const values: number[][] = [];
  const bounds: number[][] = [];
  let above = 0;
  for (const a of sitesA) {
    const row: number[] = [];
    const brow: number[] = [];
    for (const b of sitesB) {
      const r = await compare(rep(actsA[a], `A '${a}'`), rep(actsB[b], `B '${b}'`), measure, o);
      row.push(r.value);
      brow.push(r.baseline.bound);
      if (r.checks[0].passed) above++;
      options.onProgress?.({ stage: `${measure} of layer pairs`, done: values.length * sitesB.length + row.length, total: sitesA.length * sitesB.length });
    }
    values.push(row);
    bounds.push(brow);
  }
  const distance = SCORERS[measure].distance === true;
  const checks: Check[] = [{ name: 'cells above baseline', value: above / (sitesA.length * sitesB.length), detail: `fraction of layer pairs scoring beyond their permutation baseline (${o.permutations} shuffles)` }];
  if (sitesA.length === sitesB.length) {
    const best = values.map((row) => row.reduce((bi, v, j) => ((distance ? v < row[bi] : v > row[bi]) ? j : bi), 0));
    const hit = best.filter((j, i) => j === i).length / sitesA.length;
    checks.push({ name: 'same-layer identification', value: hit, detail: `fraction of A's layers whose most similar layer of B is the same one (Kornblith et al. 2019); best matches ${best.join(', ')}` });
  }
  return { measure, sitesA, sitesB, values, bounds, n: actsA[sitesA[0]].shape[0], checks };
}

const info = (title: string, reference: string, stochastic = true): MethodInfo => ({ title, reference, taxonomy: passive('hidden semantics', 'global', RAUKER_V.similarity), stochastic });

export const SIMILARITY_METHODS = {
  cka: { info: info('Centered kernel alignment (linear, RBF)', 'Kornblith et al. 2019, Similarity of Neural Network Representations Revisited'), run: similarity },
  svcca: { info: info('SVCCA: SVD then canonical correlation', 'Raghu et al. 2017, SVCCA'), run: similarity },
  pwcca: { info: info('Projection-weighted CCA', 'Morcos et al. 2018, Insights on representational similarity in neural networks with canonical correlation'), run: similarity },
  rsa: { info: info('Representational similarity analysis', 'Kriegeskorte et al. 2008, Representational similarity analysis'), run: similarity },
  procrustes: { info: info('Orthogonal Procrustes distance', 'Ding et al. 2021, Grounding Representation Similarity with Statistical Testing'), run: similarity },
  'layer-similarity': { info: info('Layer × layer similarity matrix', 'Kornblith et al. 2019 (layer correspondence)'), run: layerSimilarity },
  'model-stitching': { info: info('Model stitching', 'Lenc & Vedaldi 2015; Bansal et al. 2021, Revisiting Model Stitching'), run: stitch },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
