/**
 * Similarity of two attribution maps, as the sanity checks of Adebayo et al. 2018 ("Sanity Checks for Saliency
 * Maps") report it: Spearman rank correlation (ties by average ranks), Pearson correlation, SSIM (Wang, Bovik,
 * Sheikh, Simoncelli 2004, "Image Quality Assessment: From Error Visibility to Structural Similarity") over 2-D maps,
 * and top-k intersection. Each takes two maps of one example; `mapSimilarity` applies one to every example of two
 * attribution tensors [N, ...].
 *
 * @example
 * spearman([1, 2, 2, 3], [1, 3, 2, 4]);            // 0.949: ranks (1, 2.5, 2.5, 4) vs (1, 3, 2, 4)
 * ssim(a, b, { height: 28, width: 28 });           // Gaussian 11×11 window, σ = 1.5, K1 = 0.01, K2 = 0.03
 * mapSimilarity(original, randomized, 'spearman', { abs: true }); // one value per example
 */
import type { Tensor } from '../../runtime/tensor.js';

type Values = ArrayLike<number>;

function checkPair(what: string, a: Values, b: Values): void {
  if (a.length !== b.length) throw new Error(`${what}: the maps differ in size (${a.length} vs ${b.length} values)`);
  if (a.length < 2) throw new Error(`${what}: needs at least 2 values per map, got ${a.length}`);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) throw new Error(`${what}: value ${i} is not finite (${a[i]}, ${b[i]})`);
  }
}

const absOf = (v: Values): Float64Array => Float64Array.from(v as ArrayLike<number>, Math.abs);

/**
 * Pearson's r = cov(a, b) / (σ_a σ_b). Where a map is constant r is undefined; it is taken as 1 when the two maps
 * are identical and 0 otherwise, so that a map is always fully similar to itself.
 */
export function pearson(a: Values, b: Values): number {
  checkPair('pearson', a, b);
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma;
    const db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa === 0 || sbb === 0) return equal(a, b) ? 1 : 0;
  return Math.max(-1, Math.min(1, sab / Math.sqrt(saa * sbb)));
}

function equal(a: Values, b: Values): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** 1-based ranks, ties given the average of the ranks they span (fractional ranking). */
export function ranks(v: Values): Float64Array {
  const n = v.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => v[i] - v[j]);
  const r = new Float64Array(n);
  for (let s = 0; s < n; ) {
    let e = s + 1;
    while (e < n && v[order[e]] === v[order[s]]) e++;
    const avg = (s + 1 + e) / 2; // mean of ranks s+1 … e
    for (let k = s; k < e; k++) r[order[k]] = avg;
    s = e;
  }
  return r;
}

/** Spearman's ρ: Pearson's r of the average ranks (exact with ties). */
export function spearman(a: Values, b: Values): number {
  checkPair('spearman', a, b);
  return pearson(ranks(a), ranks(b));
}

export interface SsimOptions {
  /** The map's 2-D layout: height × width must equal its size. */
  readonly height: number;
  readonly width: number;
  /** 'gaussian' (default, Wang et al.'s 11×11 with σ = 1.5) or 'uniform' (a box of equal weights). */
  readonly window?: 'gaussian' | 'uniform';
  /** Side of the window (odd; default 11, shrunk to the largest odd side that fits a smaller map). */
  readonly size?: number;
  /** σ of the Gaussian window (default 1.5). */
  readonly sigma?: number;
  /** L, the dynamic range of the values (default: max − min over both maps, or 1 where that is 0). */
  readonly dataRange?: number;
  /** Stabilisers C1 = (K1·L)², C2 = (K2·L)² (defaults K1 = 0.01, K2 = 0.03, as in the paper). */
  readonly k1?: number;
  readonly k2?: number;
}

/** Normalised window weights (side × side, summing to 1). */
function windowWeights(kind: 'gaussian' | 'uniform', side: number, sigma: number): Float64Array {
  const w = new Float64Array(side * side);
  const c = (side - 1) / 2;
  for (let i = 0; i < side; i++) {
    for (let j = 0; j < side; j++) w[i * side + j] = kind === 'uniform' ? 1 : Math.exp(-((i - c) ** 2 + (j - c) ** 2) / (2 * sigma * sigma));
  }
  const s = w.reduce((x, y) => x + y, 0);
  for (let i = 0; i < w.length; i++) w[i] /= s;
  return w;
}

/**
 * Mean SSIM over every window position that lies inside the map (no padding). Per window, with weights w summing to
 * 1 (Wang et al. eqs. 14–16: μ = Σ w x, σ² = Σ w (x − μ)², σ_xy = Σ w (x − μ_x)(y − μ_y)):
 * SSIM = (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)).
 */
export function ssim(a: Values, b: Values, options: SsimOptions): number {
  const { height: H, width: W } = options;
  if (!Number.isInteger(H) || !Number.isInteger(W) || H < 1 || W < 1 || H * W !== a.length) {
    throw new Error(`ssim: height × width (${H} × ${W}) must be positive integers whose product is the map's size ${a.length}`);
  }
  checkPair('ssim', a, b);
  const kind = options.window ?? 'gaussian';
  if (kind !== 'gaussian' && kind !== 'uniform') throw new Error(`ssim: window must be 'gaussian' or 'uniform', got '${kind as string}'`);
  let side = options.size ?? 11;
  if (!Number.isInteger(side) || side < 1 || side % 2 === 0) throw new Error(`ssim: the window size must be a positive odd integer, got ${side}`);
  const fit = Math.min(H, W) % 2 === 1 ? Math.min(H, W) : Math.min(H, W) - 1;
  side = Math.min(side, fit);
  const sigma = options.sigma ?? 1.5;
  if (!(sigma > 0)) throw new Error(`ssim: sigma must be positive, got ${sigma}`);
  let L = options.dataRange;
  if (L === undefined) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < a.length; i++) {
      lo = Math.min(lo, a[i], b[i]);
      hi = Math.max(hi, a[i], b[i]);
    }
    L = hi > lo ? hi - lo : 1;
  }
  if (!(L > 0)) throw new Error(`ssim: dataRange must be positive, got ${L}`);
  const C1 = ((options.k1 ?? 0.01) * L) ** 2;
  const C2 = ((options.k2 ?? 0.03) * L) ** 2;
  const w = windowWeights(kind, side, sigma);
  let total = 0;
  let count = 0;
  for (let top = 0; top + side <= H; top++) {
    for (let left = 0; left + side <= W; left++) {
      let mx = 0;
      let my = 0;
      for (let i = 0; i < side; i++) {
        for (let j = 0; j < side; j++) {
          const p = (top + i) * W + left + j;
          mx += w[i * side + j] * a[p];
          my += w[i * side + j] * b[p];
        }
      }
      let vx = 0;
      let vy = 0;
      let cxy = 0;
      for (let i = 0; i < side; i++) {
        for (let j = 0; j < side; j++) {
          const p = (top + i) * W + left + j;
          const dx = a[p] - mx;
          const dy = b[p] - my;
          vx += w[i * side + j] * dx * dx;
          vy += w[i * side + j] * dy * dy;
          cxy += w[i * side + j] * dx * dy;
        }
      }
      total += ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
      count++;
    }
  }
  return total / count;
}

/** Indices of the k largest values, ties broken by the lower index (deterministic). */
export function topIndices(v: Values, k: number): Int32Array {
  const order = Array.from({ length: v.length }, (_, i) => i).sort((i, j) => v[j] - v[i] || i - j);
  return Int32Array.from(order.slice(0, k));
}

/** |top-k(a) ∩ top-k(b)| / k: the share of a's k largest features that are also among b's. */
export function topKIntersection(a: Values, b: Values, k: number): number {
  checkPair('topKIntersection', a, b);
  if (!Number.isInteger(k) || k < 1 || k > a.length) throw new Error(`topKIntersection: k must be an integer in [1, ${a.length}], got ${k}`);
  const inB = new Set(topIndices(b, k));
  let hits = 0;
  for (const i of topIndices(a, k)) if (inB.has(i)) hits++;
  return hits / k;
}

export type SimilarityName = 'spearman' | 'pearson' | 'ssim' | 'top-k';

export interface MapSimilarityOptions {
  /** Compare |attributions| (Adebayo et al.'s "absolute" rank correlation; default false: signed values). */
  readonly abs?: boolean;
  /** Top-k: k (default: 10% of the features, at least 1). */
  readonly k?: number;
  /** SSIM: window options (the map's 2-D layout comes from the tensor). */
  readonly ssim?: Omit<SsimOptions, 'height' | 'width'>;
}

/**
 * The 2-D layout of one example's map for SSIM: [H, W] as is, [C, H, W] with channels summed (after |·| when
 * `abs`), [F] as a 1 × F strip.
 */
function layoutOf(rowShape: readonly number[]): { channels: number; height: number; width: number } {
  if (rowShape.length === 1) return { channels: 1, height: 1, width: rowShape[0] };
  if (rowShape.length === 2) return { channels: 1, height: rowShape[0], width: rowShape[1] };
  if (rowShape.length === 3) return { channels: rowShape[0], height: rowShape[1], width: rowShape[2] };
  throw new Error(`ssim: maps must be [F], [H, W] or [C, H, W] per example, got [${rowShape.join(', ')}]`);
}

/** One similarity per example between two attribution tensors of the same shape [N, ...]. */
export function mapSimilarity(a: Tensor<'float32'>, b: Tensor<'float32'>, metric: SimilarityName, options: MapSimilarityOptions = {}): number[] {
  if (a.shape.join() !== b.shape.join()) throw new Error(`mapSimilarity: shapes differ: [${a.shape.join(', ')}] vs [${b.shape.join(', ')}]`);
  if (a.rank < 2) throw new Error(`mapSimilarity: attributions need a batch axis and a map per example, got [${a.shape.join(', ')}]`);
  const n = a.shape[0];
  const row = n === 0 ? 0 : a.size / n;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let x: Values = a.data.subarray(i * row, (i + 1) * row);
    let y: Values = b.data.subarray(i * row, (i + 1) * row);
    if (options.abs) {
      x = absOf(x);
      y = absOf(y);
    }
    if (metric === 'spearman') out.push(spearman(x, y));
    else if (metric === 'pearson') out.push(pearson(x, y));
    else if (metric === 'top-k') out.push(topKIntersection(x, y, options.k ?? Math.max(1, Math.round(0.1 * row))));
    else if (metric === 'ssim') {
      const { channels, height, width } = layoutOf(a.shape.slice(1));
      out.push(ssim(sumChannels(x, channels), sumChannels(y, channels), { ...options.ssim, height, width }));
    } else throw new Error(`mapSimilarity: unknown metric '${metric as string}' (spearman, pearson, ssim, top-k)`);
  }
  return out;
}

function sumChannels(v: Values, channels: number): Values {
  if (channels === 1) return v;
  const plane = v.length / channels;
  const out = new Float64Array(plane);
  for (let c = 0; c < channels; c++) for (let p = 0; p < plane; p++) out[p] += v[c * plane + p];
  return out;
}

export const mean = (v: readonly number[]): number => (v.length === 0 ? NaN : v.reduce((s, x) => s + x, 0) / v.length);
