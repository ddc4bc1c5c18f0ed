/**
 * Modular partitioning of a network's units (Räuker et al. 2023, §IV "modular partitioning"), two ways:
 *
 * - **From the weights** (Filan, Casper, Hod, Wild, Critch, Russell 2021, "Clusterability in Neural Networks"): the
 *   unit graph (unit-graph.ts: |W_ij| between neurons, the kernel slice's L1 norm between channels) is cut into k
 *   clusters by normalised spectral clustering (Shi & Malik 2000) and scored by its n-cut. Its check is Filan et al.'s
 *   clusterability test: the n-cut against those of the same network with each layer's weights shuffled (N seeded
 *   shuffles); a z-score and a one-sided p-value (the share of shuffles cutting as well or better).
 * - **From activations** (Hod, Casper, Filan, Wild, Critch, Russell 2022, "Quantifying Local Specialization in Deep
 *   Neural Networks"; Watanabe 2019, "Interpreting layered neural networks via hierarchical modular
 *   representation"): the affinity of two units is the |Pearson correlation| of their activations over a dataset
 *   (conv channels by their spatial means), clustered the same way. Its check: the n-cut against that of activations
 *   whose every unit is permuted independently across examples (correlations destroyed, marginals kept).
 *
 * Units are the outputs of every dense and conv layer, and for the weight graph the input units too (`inputs: false`
 * leaves them out; activations never include them); units with no connection at all are left out of the clustering
 * (cluster −1).
 *
 * @example
 * const p = partitionWeights(model, { k: 4, shuffles: 20, seed: 0 });
 * p.ncut; p.baseline.z; p.checks[0]; // { name: 'clusterable', value: p-value, passed: p < 0.05 }
 * const a = await partitionActivations(model, mnistTest, { k: 4, examples: 512 });
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mixSeed, mulberry32, shuffleInPlace } from '../../data/datasets/random.js';
import { Model } from '../../model/model.js';
import type { Graph } from '../../onnx/graph.js';
import { sliceRows, type Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { kmeans } from '../attribution/global/kmeans.js';
import { passiveHidden, RAUKER, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { adjacency, shuffledEdges, spectralPartition, unitGraph, type SpectralPartition, type UnitGraph, type UnitGraphOptions } from './unit-graph.js';

export interface PartitionOptions {
  /** Number of clusters (default 4). */
  readonly k?: number;
  /** Null-model samples for the check (default 20; with fewer the p-value cannot fall under 0.05). */
  readonly shuffles?: number;
  /** Seed of the shuffles and of k-means (default 0). */
  readonly seed?: number;
  /** k-means restarts (default 10). */
  readonly restarts?: number;
}

export type WeightPartitionOptions = PartitionOptions & UnitGraphOptions;

export interface ActivationPartitionOptions extends PartitionOptions {
  /** Examples read at most (default 512): the first ones of the dataset. */
  readonly examples?: number;
  /** Examples per model run (default 128). */
  readonly batchSize?: number;
}

export interface UnitCluster {
  /** The layer's weight node (`/fc1/Gemm`) or the input's name. */
  readonly layer: string;
  readonly index: number;
  /** 0 … k − 1, or −1 for a unit with no connection. */
  readonly cluster: number;
}

/** The n-cut against a null model: its samples, their mean and standard deviation, and where the network falls. */
export interface Baseline {
  readonly kind: 'shuffled-weights' | 'permuted-activations';
  readonly ncuts: readonly number[];
  readonly mean: number;
  readonly std: number;
  /** (ncut − mean) / std: negative when the network cuts better than its null model. */
  readonly z: number;
  /** Share of null samples with an n-cut ≤ the network's. */
  readonly percentile: number;
  /** One-sided p-value (1 + #{null ≤ ncut}) / (1 + N) (Phipson & Smyth 2010: never 0 for finite N). */
  readonly p: number;
}

export interface Partition {
  readonly method: string;
  readonly taxonomy: Taxonomy;
  readonly clusters: readonly UnitCluster[];
  /** Cluster of each unit in layer order (the numbering of `layers`). */
  readonly assignments: Int32Array;
  readonly k: number;
  readonly ncut: number;
  /** Units per cluster. */
  readonly sizes: readonly number[];
  readonly layers: readonly { readonly name: string; readonly op: string; readonly units: number }[];
  /** Smallest k + 1 eigenvalues of the normalised Laplacian: as many near-zero ones as nearly separate parts. */
  readonly eigenvalues: readonly number[];
  readonly baseline: Baseline;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

const ALPHA = 0.05;
const PARTITION_TAXONOMY = passiveHidden('global', RAUKER.partitioning);

interface Settings {
  readonly k: number;
  readonly shuffles: number;
  readonly seed: number;
  readonly restarts: number;
}

function settings(where: string, options: PartitionOptions, units: number): Settings {
  const k = options.k ?? 4;
  if (!Number.isInteger(k) || k < 2) throw new Error(`${where}: k must be an integer ≥ 2, got ${k}`);
  if (k > units) throw new Error(`${where}: k = ${k} exceeds the ${units} units of the network`);
  const shuffles = options.shuffles ?? 20;
  if (!Number.isInteger(shuffles) || shuffles < 1) throw new Error(`${where}: shuffles must be a positive integer, got ${shuffles}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`${where}: seed must be an integer, got ${seed}`);
  const restarts = options.restarts ?? 10;
  if (!Number.isInteger(restarts) || restarts < 1) throw new Error(`${where}: restarts must be a positive integer, got ${restarts}`);
  return { k, shuffles, seed, restarts };
}

const clusterer = (s: Settings) => (points: Float64Array, n: number, d: number, k: number) => kmeans(points, n, d, k, { seed: s.seed, restarts: s.restarts }).assignments;

/** The network's n-cut against a null model's samples. */
export function compareToBaseline(kind: Baseline['kind'], value: number, ncuts: readonly number[]): Baseline {
  const n = ncuts.length;
  const mean = ncuts.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(ncuts.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const diff = value - mean;
  const z = std > 0 ? diff / std : diff === 0 ? 0 : Math.sign(diff) * Infinity;
  const below = ncuts.filter((c) => c <= value).length;
  return { kind, ncuts, mean, std, z, percentile: below / n, p: (below + 1) / (n + 1) };
}

/** Clusters numbered by their first unit, so one partition always reads the same. */
function canonical(assignments: Int32Array, k: number): { assignments: Int32Array; sizes: number[] } {
  const map = new Int32Array(k).fill(-1);
  let next = 0;
  const out = assignments.map((c) => (c < 0 ? -1 : map[c] >= 0 ? map[c] : (map[c] = next++)));
  const sizes = new Array<number>(k).fill(0);
  for (const c of out) if (c >= 0) sizes[c]++;
  return { assignments: out, sizes };
}

function result(method: string, g: UnitGraph, s: Settings, part: SpectralPartition, baseline: Baseline, params: Record<string, unknown>, t0: number): Partition {
  const { assignments, sizes } = canonical(part.assignments, s.k);
  const clusters: UnitCluster[] = [];
  g.layers.forEach((l, li) => {
    for (let i = 0; i < l.units; i++) clusters.push({ layer: l.name, index: i, cluster: assignments[g.offsets[li] + i] });
  });
  const z = Number.isFinite(baseline.z) ? baseline.z.toFixed(2) : String(baseline.z);
  return {
    method,
    taxonomy: PARTITION_TAXONOMY,
    clusters,
    assignments,
    k: s.k,
    ncut: part.ncut,
    sizes,
    layers: g.layers.map((l) => ({ name: l.name, op: l.op, units: l.units })),
    eigenvalues: [...part.eigenvalues],
    baseline,
    checks: [
      {
        name: 'clusterable',
        value: baseline.p,
        passed: baseline.p < ALPHA,
        detail: `n-cut ${part.ncut.toPrecision(4)} vs ${baseline.kind} ${baseline.mean.toPrecision(4)} ± ${baseline.std.toPrecision(3)} (${baseline.ncuts.length} samples): z = ${z}, ${(100 * baseline.percentile).toFixed(0)}% of samples cut as well; one-sided p = ${baseline.p.toPrecision(3)} (passes below ${ALPHA}${1 / (baseline.ncuts.length + 1) >= ALPHA ? `, which ${baseline.ncuts.length} samples can never reach` : ''})`,
      },
      { name: 'z-score', value: baseline.z, detail: `(n-cut − mean ${baseline.kind} n-cut) / std; Filan et al. call a network clusterable when it lies far below its shuffles` },
      { name: 'isolated units', value: part.isolated, detail: `${part.isolated} of ${g.units} units have no connection and are left out (cluster −1)` },
    ],
    params: { k: s.k, shuffles: s.shuffles, seed: s.seed, restarts: s.restarts, ...params },
    ms: performance.now() - t0,
  };
}

/**
 * Filan et al.'s clusterability of a network's weights: spectral partition of the unit graph into k clusters, and
 * its n-cut against networks with each layer's connection strengths shuffled.
 */
export function partitionWeights(model: Model | Graph, options: WeightPartitionOptions = {}): Partition {
  const t0 = performance.now();
  const g = unitGraph(model instanceof Model ? model.graph : model, options);
  const s = settings('partitionWeights', options, g.units);
  const cluster = clusterer(s);
  const part = spectralPartition(adjacency(g), g.units, s.k, cluster);
  const ncuts: number[] = [];
  for (let i = 0; i < s.shuffles; i++) {
    const edges = shuffledEdges(g, mulberry32(mixSeed(s.seed, 0x5eed, i)));
    ncuts.push(spectralPartition(adjacency(g, edges), g.units, s.k, cluster).ncut);
  }
  const baseline = compareToBaseline('shuffled-weights', part.ncut, ncuts);
  return result('spectral-partition-weights', g, s, part, baseline, { inputs: options.inputs ?? true, norm: options.norm ?? 'l1' }, t0);
}

/** |Pearson correlation| between the columns of an [rows, n] matrix, diagonal 0; constant columns get affinity 0. */
export function correlationAffinity(x: ArrayLike<number>, rows: number, n: number): Float64Array {
  if (x.length !== rows * n) throw new Error(`correlationAffinity: ${x.length} values are not ${rows} rows of ${n}`);
  const c = new Float64Array(rows * n);
  for (let j = 0; j < n; j++) {
    let mean = 0;
    for (let r = 0; r < rows; r++) mean += x[r * n + j];
    mean /= rows;
    let ss = 0;
    for (let r = 0; r < rows; r++) ss += (x[r * n + j] - mean) ** 2;
    const scale = ss > 1e-12 * rows * (1 + mean * mean) ? 1 / Math.sqrt(ss) : 0; // a constant unit correlates with nothing
    for (let r = 0; r < rows; r++) c[r * n + j] = (x[r * n + j] - mean) * scale;
  }
  const a = new Float64Array(n * n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    for (let i = 0; i < n; i++) {
      const ci = c[o + i];
      if (ci === 0) continue;
      for (let j = i + 1; j < n; j++) a[i * n + j] += ci * c[o + j];
    }
  }
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = Math.min(1, Math.abs(a[i * n + j]));
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  }
  return a;
}

/**
 * Activations of every layer's units over the first `examples` examples, streamed in batches: [rows, units]
 * (conv channels by their spatial mean). Bounded by examples × units.
 */
async function unitActivations(model: Model, g: UnitGraph, data: Dataset<'float32'> | Tensor<'float32'>, examples: number, batchSize: number): Promise<{ x: Float64Array; rows: number }> {
  const input = model.inputs[0].name;
  const total = Math.min(examples, 'batches' in data ? data.size : (data.shape[0] ?? 0));
  if (total < 3) throw new Error(`partitionActivations: needs at least 3 examples for correlations, got ${total}`);
  const batches: Iterable<Tensor> = 'batches' in data
    ? (function* () { for (const b of data.slice(0, total).batches(batchSize)) yield b.x; })()
    : (function* () { for (let a = 0; a < total; a += batchSize) yield sliceRows(data, a, Math.min(total, a + batchSize)); })();
  const x = new Float64Array(total * g.units);
  const sites = g.layers.map((l) => l.activation);
  let row = 0;
  for (const batch of batches) {
    const { captures } = await model.run({ [input]: batch }, { capture: sites });
    const b = batch.shape[0];
    g.layers.forEach((l, li) => {
      const t = captures[l.activation];
      const [rows, units] = t.shape;
      if (rows !== b || units !== l.units || (t.shape.length !== 2 && t.shape.length !== 4)) {
        throw new Error(`partitionActivations: layer ${l.name} gives activations of shape [${t.shape.join(', ')}] at '${l.activation}'; expected [${b}, ${l.units}] or [${b}, ${l.units}, H, W]`);
      }
      const spatial = t.size / (rows * units);
      const d = t.data as ArrayLike<number>;
      for (let r = 0; r < rows; r++) {
        for (let u = 0; u < units; u++) {
          let s = 0;
          for (let p = 0; p < spatial; p++) s += d[(r * units + u) * spatial + p];
          const v = s / spatial;
          if (!Number.isFinite(v)) throw new Error(`partitionActivations: layer ${l.name} unit ${u} is ${v} on example ${row + r}`);
          x[(row + r) * g.units + g.offsets[li] + u] = v;
        }
      }
    });
    row += b;
  }
  return { x, rows: total };
}

/**
 * Spectral partition of the units by the |correlation| of their activations over a dataset (Hod et al. 2022;
 * Watanabe 2019), checked against activations permuted across examples unit by unit.
 */
export async function partitionActivations(model: Model, data: Dataset<'float32'> | Tensor<'float32'>, options: ActivationPartitionOptions = {}): Promise<Partition> {
  const t0 = performance.now();
  const g = unitGraph(model.graph, { inputs: false });
  const s = settings('partitionActivations', options, g.units);
  const examples = options.examples ?? 512;
  const batchSize = options.batchSize ?? 128;
  for (const [k, v] of Object.entries({ examples, batchSize })) if (!Number.isInteger(v) || v < 1) throw new Error(`partitionActivations: ${k} must be a positive integer, got ${v}`);
  const { x, rows } = await unitActivations(model, g, data, examples, batchSize);
  const n = g.units;
  const cluster = clusterer(s);
  const part = spectralPartition(correlationAffinity(x, rows, n), n, s.k, cluster);
  const ncuts: number[] = [];
  const perm = new Float64Array(x.length);
  for (let i = 0; i < s.shuffles; i++) {
    const rand = mulberry32(mixSeed(s.seed, 0xacd, i));
    for (let u = 0; u < n; u++) {
      const order = shuffleInPlace(Int32Array.from({ length: rows }, (_, r) => r), rand);
      for (let r = 0; r < rows; r++) perm[r * n + u] = x[order[r] * n + u];
    }
    ncuts.push(spectralPartition(correlationAffinity(perm, rows, n), n, s.k, cluster).ncut);
  }
  const baseline = compareToBaseline('permuted-activations', part.ncut, ncuts);
  return result('spectral-partition-activations', g, s, part, baseline, { examples: rows, batchSize }, t0);
}

export const PARTITION_METHODS = {
  'spectral-partition-weights': {
    info: { title: 'Spectral partition of the weight graph, with its clusterability against shuffled weights', reference: 'Filan et al. 2021, Clusterability in neural networks', taxonomy: PARTITION_TAXONOMY, stochastic: true },
    run: partitionWeights,
  },
  'spectral-partition-activations': {
    info: { title: 'Spectral partition of units by activation correlation, against permuted activations', reference: 'Hod et al. 2022, Quantifying local specialization in deep neural networks (Watanabe 2019)', taxonomy: PARTITION_TAXONOMY, stochastic: true },
    run: partitionActivations,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
