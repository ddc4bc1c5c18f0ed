/**
 * Spectral Relevance Analysis (SpRAy; Lapuschkin, Wäldchen, Binder, Montavon, Samek, Müller 2019, "Unmasking Clever
 * Hans predictors and assessing what machines really learn", Nature Communications): cluster the attribution maps of
 * many examples to find the distinct strategies a model uses for a class (a "Clever Hans" cluster that looks at a
 * watermark, say). The steps, as in the paper: (1) downsample the maps to a common small size and normalise them,
 * (2) spectral clustering — a symmetric k-nearest-neighbour affinity graph, the eigenvectors of its normalised
 * Laplacian L = I − D^{-1/2} W D^{-1/2} (Ng, Jordan, Weiss 2002; rows of the embedding scaled to unit length), k-means
 * on them — and (3) the number of clusters from the eigengap: the largest gap λ_k − λ_{k−1} among the smallest
 * eigenvalues (λ has as many zeros as the graph has connected components).
 *
 * Preprocessing here: channels are summed ([N, C, H, W] → [N, H, W]), maps area-averaged to `size`, then each divided
 * by its largest |value| (so maps of different overall strength compare by shape). Affinity: W_ij = 1 when j is among
 * the `neighbours` nearest maps of i or i among those of j (Euclidean), else 0.
 *
 * @example
 * const a = await ATTRIBUTION_METHODS['gradient-x-input'].explain(model, { x }, { target: 3 });
 * const s = spray(a.attributions, { size: [14, 14] });
 * s.clusters; s.assignments; s.means; // [clusters, 14, 14]: what each group of examples attends to
 */
import { Tensor } from '../../../runtime/tensor.js';
import { symmetricEigen } from './eigen.js';
import { kmeans } from './kmeans.js';

export interface SprayOptions {
  /** Height and width after downsampling (default: each side at most 32, never enlarged). */
  readonly size?: readonly [number, number];
  /** Cluster |attributions| (default false: signed, as the paper's relevance maps). */
  readonly abs?: boolean;
  /** k of the k-NN graph (default min(10, N − 1)). */
  readonly neighbours?: number;
  /** Number of clusters; default: by the eigengap, between 1 and maxClusters. */
  readonly clusters?: number;
  /** Most clusters the eigengap may choose (default min(10, N − 1)). */
  readonly maxClusters?: number;
  /** Seed and restarts of k-means (defaults 0 and 10). */
  readonly seed?: number;
  readonly restarts?: number;
}

export interface SprayResult {
  readonly clusters: number;
  /** Cluster of each map, 0 … clusters − 1. */
  readonly assignments: Int32Array;
  /** Every eigenvalue of the normalised Laplacian, ascending (in [0, 2]). */
  readonly eigenvalues: Float64Array;
  /** λ_k − λ_{k−1} for k = 1 … maxClusters: gaps[k − 1]; the eigengap picks the largest. */
  readonly gaps: Float64Array;
  /** Mean preprocessed map of each cluster, [clusters, h, w] (or [clusters, F]). */
  readonly means: Tensor<'float32'>;
  readonly sizes: Int32Array;
  /** The preprocessed maps, [N, h, w] (or [N, F]). */
  readonly maps: Tensor<'float32'>;
}

/** Box-filter (area) downsampling of an h × w map to oh × ow: each output averages the inputs it covers, weighted by overlap. */
export function downsample(map: ArrayLike<number>, h: number, w: number, oh: number, ow: number): Float64Array {
  const out = new Float64Array(oh * ow);
  const sy = h / oh;
  const sx = w / ow;
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      let acc = 0;
      let area = 0;
      for (let y = Math.floor(oy * sy); y < Math.min(h, Math.ceil((oy + 1) * sy)); y++) {
        const wy = Math.min(y + 1, (oy + 1) * sy) - Math.max(y, oy * sy);
        for (let x = Math.floor(ox * sx); x < Math.min(w, Math.ceil((ox + 1) * sx)); x++) {
          const wgt = wy * (Math.min(x + 1, (ox + 1) * sx) - Math.max(x, ox * sx));
          acc += wgt * map[y * w + x];
          area += wgt;
        }
      }
      out[oy * ow + ox] = acc / area;
    }
  }
  return out;
}

/** Step (1): [N, F], [N, H, W] or [N, C, H, W] → normalised maps [N, h·w] and their shape. */
function preprocess(maps: Tensor<'float32'>, options: SprayOptions): { x: Float64Array; n: number; d: number; shape: number[] } {
  const [n, ...row] = maps.shape;
  if (row.length < 1 || row.length > 3) throw new Error(`spray: maps must be [N, F], [N, H, W] or [N, C, H, W], got [${maps.shape.join(', ')}]`);
  const channels = row.length === 3 ? row[0] : 1;
  const [h, w] = row.length === 1 ? [1, row[0]] : row.slice(-2);
  const [oh, ow] = row.length === 1 ? [1, row[0]] : (options.size ?? [Math.min(h, 32), Math.min(w, 32)]);
  if (!(Number.isInteger(oh) && Number.isInteger(ow) && oh >= 1 && ow >= 1 && oh <= h && ow <= w)) {
    throw new Error(`spray: size [${oh}, ${ow}] must be positive integers no larger than the maps' [${h}, ${w}]`);
  }
  const d = oh * ow;
  const x = new Float64Array(n * d);
  const plane = new Float64Array(h * w);
  const R = channels * h * w;
  for (let i = 0; i < n; i++) {
    plane.fill(0);
    for (let c = 0; c < channels; c++) {
      for (let p = 0; p < h * w; p++) {
        const v = maps.data[i * R + c * h * w + p];
        if (!Number.isFinite(v)) throw new Error(`spray: map ${i} holds ${v}`);
        plane[p] += options.abs ? Math.abs(v) : v;
      }
    }
    const small = oh === h && ow === w ? plane : downsample(plane, h, w, oh, ow);
    let m = 0;
    for (let j = 0; j < d; j++) m = Math.max(m, Math.abs(small[j]));
    for (let j = 0; j < d; j++) x[i * d + j] = m > 0 ? small[j] / m : 0;
  }
  return { x, n, d, shape: row.length === 1 ? [row[0]] : [oh, ow] };
}

/** Step (2a): the symmetric k-NN affinity (0/1) of n points. */
export function knnAffinity(x: Float64Array, n: number, d: number, k: number): Float64Array {
  const dist = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += (x[i * d + t] - x[j * d + t]) ** 2;
      dist[i * n + j] = dist[j * n + i] = s;
    }
  }
  const W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const others = Array.from({ length: n }, (_, j) => j).filter((j) => j !== i).sort((a, b) => dist[i * n + a] - dist[i * n + b] || a - b);
    for (const j of others.slice(0, k)) W[i * n + j] = W[j * n + i] = 1;
  }
  return W;
}

export function spray(maps: Tensor<'float32'>, options: SprayOptions = {}): SprayResult {
  const { x, n, d, shape } = preprocess(maps, options);
  if (n < 3) throw new Error(`spray: needs at least 3 maps to cluster, got ${n}`);
  const k = options.neighbours ?? Math.min(10, n - 1);
  if (!Number.isInteger(k) || k < 1 || k >= n) throw new Error(`spray: neighbours must be an integer in [1, ${n - 1}], got ${k}`);
  const maxK = options.maxClusters ?? Math.min(10, n - 1);
  if (!Number.isInteger(maxK) || maxK < 1 || maxK >= n) throw new Error(`spray: maxClusters must be an integer in [1, ${n - 1}], got ${maxK}`);
  const fixed = options.clusters;
  if (fixed !== undefined && !(Number.isInteger(fixed) && fixed >= 1 && fixed <= n)) throw new Error(`spray: clusters must be an integer in [1, ${n}], got ${fixed}`);
  const W = knnAffinity(x, n, d, k);
  const deg = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) deg[i] += W[i * n + j];
  const L = new Float64Array(n * n); // I − D^{-1/2} W D^{-1/2}
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) L[i * n + j] = (i === j ? 1 : 0) - W[i * n + j] / Math.sqrt(deg[i] * deg[j]);
  const { values, vectors } = symmetricEigen(L, n);
  const gaps = Float64Array.from({ length: maxK }, (_, i) => values[i + 1] - values[i]);
  let clusters = fixed ?? 1 + gaps.indexOf(Math.max(...gaps));
  // Step (2b): rows of the first `clusters` eigenvectors, scaled to unit length, clustered by k-means.
  const emb = new Float64Array(n * clusters);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let j = 0; j < clusters; j++) norm += vectors[i * n + j] ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < clusters; j++) emb[i * clusters + j] = vectors[i * n + j] / norm;
  }
  const km = kmeans(emb, n, clusters, clusters, { seed: options.seed, restarts: options.restarts });
  // Number clusters by first appearance, so results read the same across seeds.
  const rename = new Map<number, number>();
  const assignments = Int32Array.from(km.assignments, (a) => (rename.has(a) ? rename.get(a)! : (rename.set(a, rename.size), rename.size - 1)));
  clusters = rename.size;
  const sizes = new Int32Array(clusters);
  const means = new Float32Array(clusters * d);
  for (let i = 0; i < n; i++) {
    sizes[assignments[i]]++;
    for (let t = 0; t < d; t++) means[assignments[i] * d + t] += x[i * d + t];
  }
  for (let c = 0; c < clusters; c++) for (let t = 0; t < d; t++) means[c * d + t] /= sizes[c];
  return {
    clusters,
    assignments,
    eigenvalues: values,
    gaps,
    means: new Tensor('float32', means, [clusters, ...shape]),
    sizes,
    maps: new Tensor('float32', Float32Array.from(x), [n, ...shape]),
  };
}
