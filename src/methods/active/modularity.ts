/**
 * Modularity during training (Räuker et al. 2023, §IV "modularity"): a clusterability regulariser that fixes a
 * partition of every layer's units into k groups (unit i of n in group ⌊i·k/n⌋, the input features and the classes
 * included) and penalises the weight mass between groups, λ·Σ_{group(o) ≠ group(i)} |W_oi| — a block-diagonal prior
 * on |W|, the structure Filan et al. (2021, "Clusterability in Neural Networks") measure by the n-cut of the unit
 * graph. It acts as a proximal soft-threshold on the off-block weights after every step, so connections between
 * modules reach exactly zero unless the task pays for them.
 *
 * Reported against the unregularised twin (twin.ts): the partitioning score of subnetworks/partition.ts — the n-cut
 * of the spectral partition and its clusterability p-value against shuffled weights — the share of |W| between the
 * planted modules, and the accuracy cost.
 *
 * @example
 * const model = mlp({ inputs: 30, hidden: [32, 32], classes: 2, seed: 1 });
 * const r = await trainModular(model, { k: 2, strength: 0.05, train, test, epochs: 20, batchSize: 16, seed: 1 });
 * r.partition.regularized.ncut; r.partition.twin.ncut; r.checks;
 */
import type { HostTerm } from '../../model/train/index.js';
import { Graph } from '../../onnx/graph.js';
import type { ModelProto } from '../../onnx/proto.js';
import { tensorFromProto } from '../../onnx/tensor-proto.js';
import type { Check } from '../attribution/explanation.js';
import { partitionWeights, type Partition } from '../subnetworks/partition.js';
import { active, RAUKER_INTRINSIC, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { weightLayers, type WeightLayer } from './sparsity.js';
import { trainTwins, type Regularizer, type TrainedRun, type TwinOptions } from './twin.js';

export interface ModularityOptions {
  /** λ, the weight of the between-module L1 penalty (> 0). */
  readonly strength: number;
  /** Number of modules (default 2). */
  readonly k?: number;
}

/** The planted module of unit i of a layer of n units. */
export const moduleOf = (i: number, n: number, k: number): number => Math.floor((i * k) / n);

/**
 * For each layer, 1 where a weight joins units of different modules: [out, in] by the weight's own layout (a conv
 * kernel's whole [kh, kw] slice follows its channel pair; a dense layer after a flatten groups its input features in
 * k contiguous runs, which are whole channels when k divides the channel count).
 */
export function offBlockMasks(layers: readonly WeightLayer[], k: number): Map<string, Uint8Array> {
  const masks = new Map<string, Uint8Array>();
  for (const l of layers) {
    const inAxis = l.op === 'MatMul' ? l.shape.length - 2 : l.unitAxis === 0 ? 1 : 0;
    const n = l.shape.reduce((a, b) => a * b, 1);
    const strides = l.shape.map((_, a) => l.shape.slice(a + 1).reduce((x, y) => x * y, 1));
    const units = l.shape[l.unitAxis];
    const inputs = l.shape[inAxis];
    const mask = new Uint8Array(n);
    for (let f = 0; f < n; f++) {
      const o = Math.floor(f / strides[l.unitAxis]) % units;
      const i = Math.floor(f / strides[inAxis]) % inputs;
      mask[f] = moduleOf(o, units, k) !== moduleOf(i, inputs, k) ? 1 : 0;
    }
    masks.set(l.weight, mask);
  }
  return masks;
}

function check(where: string, model: ModelProto, options: ModularityOptions): { k: number; layers: WeightLayer[] } {
  const k = options.k ?? 2;
  if (!(Number.isFinite(options.strength) && options.strength > 0)) throw new Error(`${where}: strength must be a positive number, got ${options.strength}`);
  if (!Number.isInteger(k) || k < 2) throw new Error(`${where}: k must be an integer ≥ 2, got ${k}`);
  const layers = weightLayers(model);
  return { k, layers };
}

/** The block-diagonal prior as a host term: value λ·Σ|W_off|, proximal soft-threshold of the off-block weights. */
export function modularityRegularizer(model: ModelProto, options: ModularityOptions): Regularizer {
  const { k, layers } = check('modularityRegularizer', model, options);
  const masks = offBlockMasks(layers, k);
  const { strength } = options;
  const term: HostTerm = {
    name: 'modularity',
    penalty(ws) {
      let s = 0;
      for (const [name, mask] of masks) {
        const w = ws.get(name)!;
        for (let i = 0; i < w.length; i++) if (mask[i]) s += Math.abs(w[i]);
      }
      return strength * s;
    },
    afterStep(ws, _grads, lr) {
      const t = lr * strength;
      for (const [name, mask] of masks) {
        const w = ws.get(name)!;
        for (let i = 0; i < w.length; i++) if (mask[i]) w[i] = w[i] > t ? w[i] - t : w[i] < -t ? w[i] + t : 0;
      }
    },
  };
  return { hostTerms: [term] };
}

/** Share of the total |W| of the layers that joins different planted modules. */
export function offBlockShare(model: ModelProto, k: number): number {
  const g = new Graph(model);
  const layers = weightLayers(g);
  const masks = offBlockMasks(layers, k);
  let off = 0;
  let all = 0;
  for (const l of layers) {
    const w = tensorFromProto(g.initializers.get(l.weight)!).data as Float32Array;
    const mask = masks.get(l.weight)!;
    for (let i = 0; i < w.length; i++) {
      all += Math.abs(w[i]);
      if (mask[i]) off += Math.abs(w[i]);
    }
  }
  return all > 0 ? off / all : 0;
}

export interface ModularTrainingOptions extends TwinOptions, ModularityOptions {
  /** Shuffled networks of the clusterability test (default 20: the least that can reach p < 0.05). */
  readonly shuffles?: number;
}

export interface ModularityResult {
  readonly method: 'modularity';
  readonly taxonomy: Taxonomy;
  readonly strength: number;
  readonly k: number;
  readonly regularized: TrainedRun;
  readonly twin: TrainedRun;
  /** Spectral partitions of both models' weight graphs into k clusters, each with its shuffled-weights baseline. */
  readonly partition: { readonly regularized: Partition; readonly twin: Partition };
  /** Share of |W| between planted modules. */
  readonly offBlock: { readonly regularized: number; readonly twin: number };
  readonly checks: readonly Check[];
  readonly ms: number;
}

const MODULARITY_TAXONOMY = active('hidden semantics', 'global', RAUKER_INTRINSIC.modularity);

/** Trains with the modularity regulariser and its twin, and partitions both (Filan et al. 2021). */
export async function trainModular(model: ModelProto, options: ModularTrainingOptions): Promise<ModularityResult> {
  const t0 = performance.now();
  const { k } = check('trainModular', model, options);
  const twins = await trainTwins(model, modularityRegularizer(model, options), options);
  const { regularized, twin } = twins;
  const part = (m: TrainedRun) => partitionWeights(m.model, { k, shuffles: options.shuffles ?? 20, seed: options.seed });
  const partition = { regularized: part(regularized), twin: part(twin) };
  const offBlock = { regularized: offBlockShare(regularized.proto, k), twin: offBlockShare(twin.proto, k) };
  const r = partition.regularized;
  const t = partition.twin;
  return {
    method: 'modularity',
    taxonomy: MODULARITY_TAXONOMY,
    strength: options.strength,
    k,
    regularized,
    twin,
    partition,
    offBlock,
    checks: [
      ...twins.checks,
      {
        name: 'n-cut',
        value: r.ncut - t.ncut,
        passed: r.ncut < t.ncut,
        detail: `n-cut of the spectral ${k}-partition ${r.ncut.toPrecision(4)} regularised vs ${t.ncut.toPrecision(4)} for the twin (lower: more modular)`,
      },
      {
        name: 'clusterability',
        value: r.baseline.p,
        passed: r.baseline.p < 0.05 && r.baseline.p <= t.baseline.p,
        detail: `one-sided p against ${r.baseline.ncuts.length} shuffled-weight networks: ${r.baseline.p.toPrecision(3)} (z = ${r.baseline.z.toFixed(2)}) regularised vs ${t.baseline.p.toPrecision(3)} (z = ${t.baseline.z.toFixed(2)}) for the twin`,
      },
      {
        name: 'between-module weight',
        value: offBlock.regularized,
        detail: `${(100 * offBlock.regularized).toFixed(1)}% of |W| joins different planted modules, vs ${(100 * offBlock.twin).toFixed(1)}% for the twin (${(100 * (1 - 1 / k)).toFixed(0)}% expected of a network blind to them)`,
      },
    ],
    ms: performance.now() - t0,
  };
}

export const MODULARITY_METHODS = {
  modularity: {
    info: {
      title: 'Block-diagonal (between-module L1) regulariser, with clusterability against the unregularised twin',
      reference: 'Filan et al. 2021, Clusterability in neural networks',
      taxonomy: MODULARITY_TAXONOMY,
      stochastic: true,
    },
    run: trainModular,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
