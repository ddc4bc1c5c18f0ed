/**
 * Tree regularisation (Wu, Hughes, Parbhoo, Zazzi, Roth, Doshi-Velez 2018, "Beyond Sparsity: Tree Regularization of
 * Deep Models for Interpretability"): train a network whose decision function a small decision tree can simulate.
 * The tree's cost is its average decision path length (APL: the mean number of splits an input of the training data
 * passes on its way to a leaf) of a CART tree (rules/tree.ts) fitted to the network's own predictions. APL is not
 * differentiable in the weights, so, as the paper does, a small surrogate MLP learns the map from the flattened
 * weight vector θ to APL, and λ·surrogate(θ) is the penalty.
 *
 * Here the surrogate lives on the host: a HostTerm adds λ·∂surrogate/∂θ (backpropagated through its frozen layers in
 * float64) to the weight gradients before each optimiser step. Every `every` steps the regulariser's batch transform
 * refits it: it fits trees to the network at the current θ and at `perturbations` random perturbations of θ (the
 * paper's augmentation of the weight samples), records each (θ, APL), and retrains the surrogate on the most recent
 * records, warm-started. The penalty is 0 until the first fit, which happens before the first step.
 *
 * @example
 * const data = parabolaDataset({ size: 500, seed: 1 });
 * const model = mlp({ inputs: 2, hidden: [16, 16], classes: 2, seed: 1 });
 * const r = await trainTreeRegularized(model, { strength: 0.1, train: data, test, epochs: 30, batchSize: 25, seed: 1 });
 * r.tree.regularized.apl; r.tree.twin.apl; r.checks;
 */
import { dataset, type Batch, type Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import type { HostTerm, Trainer } from '../../model/train/index.js';
import type { ModelProto } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { fitTree, type DecisionTree, type Matrix } from '../rules/tree.js';
import { active, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { predictedClasses, trainTwins, type Regularizer, type TrainedRun, type TwinOptions } from './twin.js';

/** The 2-D toy of Wu et al. §5: x uniform on [−1, 1]², class 1 above the parabola x₂ = 2x₁² − 0.5. */
export function parabolaDataset(options: { size: number; seed: number; flip?: number }): Dataset<'float32'> {
  const { size, seed, flip = 0 } = options;
  if (!Number.isInteger(size) || size < 1) throw new Error(`parabolaDataset: size must be a positive integer, got ${size}`);
  if (!(flip >= 0 && flip < 0.5)) throw new Error(`parabolaDataset: flip must be in [0, 0.5), got ${flip}`);
  const rand = mulberry32(seed);
  const x = new Float32Array(2 * size);
  const y = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    x[2 * i] = 2 * rand() - 1;
    x[2 * i + 1] = 2 * rand() - 1;
    y[i] = (x[2 * i + 1] > 2 * x[2 * i] ** 2 - 0.5 ? 1 : 0) ^ (rand() < flip ? 1 : 0);
  }
  return dataset({
    name: `parabola(${size}, seed ${seed})`,
    size,
    inputShape: [2],
    inputDType: 'float32',
    numClasses: 2,
    classNames: ['below', 'above'],
    featureNames: ['x1', 'x2'],
    labels: y,
    gather: (ix) => ({
      x: Tensor.float32(Float32Array.from({ length: 2 * ix.length }, (_, k) => x[2 * ix[k >> 1] + (k & 1)]), [ix.length, 2]),
      y: Tensor.int64(Array.from(ix, (i) => y[i]), [ix.length]),
    }),
  });
}

/** Mean number of splits on the decision path of each row of x (Wu et al.'s APL). */
export function averagePathLength(tree: DecisionTree, x: Matrix): number {
  let s = 0;
  for (let r = 0; r < x.rows; r++) s += tree.leafOf(x, r).depth;
  return s / Math.max(1, x.rows);
}

/** The first `rows` inputs of a dataset as a flat matrix (its features, flattened per example). */
export function inputMatrix(data: Dataset, rows = data.size): Matrix {
  const n = Math.min(rows, data.size);
  const cols = data.inputShape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n * cols);
  let r = 0;
  for (const b of data.slice(0, n).batches(512)) {
    out.set(b.x.data as Float32Array, r * cols);
    r += b.x.shape[0];
  }
  return { data: out, rows: n, cols };
}

export interface TreeFit {
  readonly tree: DecisionTree;
  readonly apl: number;
  /** Nodes of the tree (splits and leaves). */
  readonly nodes: number;
  readonly leaves: number;
  /** Share of rows where the tree predicts what the network does. */
  readonly fidelity: number;
}

/** A CART tree fitted to the network's predictions on x, with its APL (Wu et al.'s tree cost). */
export function treeCost(x: Matrix, predictions: ArrayLike<number>, classes: number, minSamplesLeaf: number): TreeFit {
  const tree = fitTree(x, predictions, { minSamplesLeaf, classes });
  const p = tree.predict(x);
  let agree = 0;
  for (let i = 0; i < x.rows; i++) if (p[i] === predictions[i]) agree++;
  return { tree, apl: averagePathLength(tree, x), nodes: 2 * tree.leaves - 1, leaves: tree.leaves, fidelity: agree / Math.max(1, x.rows) };
}

/**
 * The surrogate of Wu et al.: a one-hidden-layer tanh MLP from the flattened weights (centred on the records' mean
 * and divided by their overall spread) to the standardised APL, fitted by full-batch Adam on squared error.
 */
export class TreeSurrogate {
  private readonly w1: Float64Array;
  private readonly b1: Float64Array;
  private readonly w2: Float64Array;
  private b2 = 0;
  private readonly moments: Float64Array[];
  private t = 0;
  private center: Float64Array;
  private scale = 1;
  private yMean = 0;
  private yStd = 1;

  constructor(readonly inputs: number, readonly hidden: number, seed: number) {
    const rand = mulberry32(seed);
    const bound = 1 / Math.sqrt(inputs);
    this.w1 = Float64Array.from({ length: hidden * inputs }, () => (2 * rand() - 1) * bound);
    this.b1 = new Float64Array(hidden);
    this.w2 = Float64Array.from({ length: hidden }, () => (2 * rand() - 1) / Math.sqrt(hidden));
    this.center = new Float64Array(inputs);
    const size = this.w1.length + 2 * hidden + 1;
    this.moments = [new Float64Array(size), new Float64Array(size)];
  }

  /** The predicted APL at θ, and (when `grad` is given) += weight·∂APL/∂θ into it. */
  predict(theta: ArrayLike<number>, grad?: { out: Float64Array; weight: number }): number {
    const { inputs: p, hidden: h } = this;
    const a = new Float64Array(h);
    let y = this.b2;
    for (let j = 0; j < h; j++) {
      let s = this.b1[j];
      const row = j * p;
      for (let i = 0; i < p; i++) s += this.w1[row + i] * ((theta[i] - this.center[i]) / this.scale);
      a[j] = Math.tanh(s);
      y += this.w2[j] * a[j];
    }
    if (grad) {
      for (let j = 0; j < h; j++) {
        const d = (grad.weight * this.yStd * this.w2[j] * (1 - a[j] * a[j])) / this.scale;
        const row = j * p;
        for (let i = 0; i < p; i++) grad.out[i] += d * this.w1[row + i];
      }
    }
    return this.yMean + this.yStd * y;
  }

  /** Fits the records (warm-started) for `iterations` Adam steps; returns R² on them. */
  fit(thetas: readonly Float64Array[], apls: readonly number[], iterations: number, lr = 1e-2, decay = 1e-4): number {
    const n = thetas.length;
    const { inputs: p, hidden: h } = this;
    this.center = new Float64Array(p);
    for (const t of thetas) for (let i = 0; i < p; i++) this.center[i] += t[i] / n;
    let ss = 0;
    for (const t of thetas) for (let i = 0; i < p; i++) ss += (t[i] - this.center[i]) ** 2;
    this.scale = Math.sqrt(ss / n) || 1; // the records' spread around their mean, as one number
    this.yMean = apls.reduce((a, b) => a + b, 0) / n;
    this.yStd = Math.sqrt(apls.reduce((a, b) => a + (b - this.yMean) ** 2, 0) / n) || 1;
    const xs = thetas.map((t) => Float64Array.from(t, (v, i) => (v - this.center[i]) / this.scale));
    const ys = apls.map((v) => (v - this.yMean) / this.yStd);
    const g = new Float64Array(this.moments[0].length);
    const a = new Float64Array(h);
    const { w1, b1, w2 } = this; // updated in place by adam()
    const o1 = w1.length;
    for (let it = 0; it < iterations; it++) {
      g.fill(0);
      for (let r = 0; r < n; r++) {
        const xr = xs[r];
        let y = this.b2;
        for (let j = 0; j < h; j++) {
          let s = b1[j];
          const row = j * p;
          for (let i = 0; i < p; i++) s += w1[row + i] * xr[i];
          a[j] = Math.tanh(s);
          y += w2[j] * a[j];
        }
        const e = (2 * (y - ys[r])) / n;
        g[g.length - 1] += e;
        for (let j = 0; j < h; j++) {
          g[o1 + h + j] += e * a[j];
          const d = e * w2[j] * (1 - a[j] * a[j]);
          g[o1 + j] += d;
          const row = j * p;
          for (let i = 0; i < p; i++) g[row + i] += d * xr[i];
        }
      }
      this.adam(g, lr, decay);
    }
    const res = ys.reduce((acc, y, r) => acc + (y - (this.predict(thetas[r]) - this.yMean) / this.yStd) ** 2, 0);
    const tot = ys.reduce((acc, y) => acc + y * y, 0);
    return tot > 0 ? 1 - res / tot : 0;
  }

  private adam(g: Float64Array, lr: number, decay: number): void {
    const [m, v] = this.moments;
    this.t++;
    const params = [this.w1, this.b1, this.w2];
    let k = 0;
    const c1 = 1 - 0.9 ** this.t;
    const c2 = 1 - 0.999 ** this.t;
    const update = (value: number, i: number) => {
      const gi = g[i] + decay * value;
      m[i] = 0.9 * m[i] + 0.1 * gi;
      v[i] = 0.999 * v[i] + 0.001 * gi * gi;
      return value - (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + 1e-8);
    };
    for (const arr of params) for (let i = 0; i < arr.length; i++, k++) arr[i] = update(arr[i], k);
    this.b2 = update(this.b2, k);
  }
}

export interface TreeRegularizerOptions {
  /** λ, the weight of the surrogate's predicted APL (> 0). */
  readonly strength: number;
  /** The training inputs the trees are fitted on (their first `samples` examples, default 1000). */
  readonly data: Dataset;
  readonly samples?: number;
  /** Steps between refits of the surrogate (default 20). */
  readonly every?: number;
  /** Perturbed weight vectors recorded per refit, besides the current one (default 8). */
  readonly perturbations?: number;
  /** Perturbation scale, relative to the root-mean-square weight (default 0.1). */
  readonly noise?: number;
  /** Fewest training examples in a leaf of the fitted trees (default 5). */
  readonly minSamplesLeaf?: number;
  /** Surrogate width (default 25), Adam iterations per refit (default 60), records kept (default 200). */
  readonly hidden?: number;
  readonly iterations?: number;
  readonly keep?: number;
  readonly seed?: number;
}

/** One weight vector the surrogate learned from. */
export interface TreeRecord {
  readonly step: number;
  readonly perturbed: boolean;
  readonly apl: number;
}

export interface TreeRegularizer extends Regularizer {
  /** Every (θ, APL) pair recorded, in order, without θ. */
  readonly records: readonly TreeRecord[];
  /** The surrogate's R² on its training records after each refit. */
  readonly fits: readonly number[];
}

/** The tree regulariser for the trainer: a host term (surrogate gradient) and a transform that refits the surrogate. */
export function treeRegularizer(model: ModelProto, options: TreeRegularizerOptions): TreeRegularizer {
  const { strength, data, samples = 1000, every = 20, perturbations = 8, noise = 0.1, minSamplesLeaf = 5, hidden = 25, iterations = 60, keep = 200, seed = 0 } = options;
  if (!(Number.isFinite(strength) && strength > 0)) throw new Error(`treeRegularizer: strength must be a positive number, got ${strength}`);
  for (const [k, v] of Object.entries({ samples, every, hidden, iterations, keep, minSamplesLeaf })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`treeRegularizer: ${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(perturbations) || perturbations < 0) throw new Error(`treeRegularizer: perturbations must be an integer ≥ 0, got ${perturbations}`);
  if (!(noise >= 0)) throw new Error(`treeRegularizer: noise must be ≥ 0, got ${noise}`);
  if (data.size < 2 * minSamplesLeaf) throw new Error(`treeRegularizer: ${data.size} examples cannot fill two leaves of ${minSamplesLeaf}`);
  const names = model.graph!.initializer.filter((t) => t.dataType === 1).map((t) => t.name);
  const sizes = names.map((n) => model.graph!.initializer.find((t) => t.name === n)!.dims.reduce((a, d) => a * Number(d), 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  const classes = data.numClasses ?? Math.max(...Array.from(data.labels ?? [1], (v) => v)) + 1;
  const sample = data.slice(0, samples);
  const x = inputMatrix(sample);
  const surrogate = new TreeSurrogate(total, hidden, seed);
  const rand = mulberry32(seed ^ 0x7eee);
  const thetas: Float64Array[] = [];
  const records: TreeRecord[] = [];
  const apls: number[] = [];
  const fits: number[] = [];
  let fitted = false;
  let step = 0;
  const flatten = (ws: ReadonlyMap<string, { length: number; [i: number]: number }>) => {
    const out = new Float64Array(total);
    let o = 0;
    names.forEach((n, j) => {
      const w = ws.get(n)!;
      for (let i = 0; i < sizes[j]; i++) out[o++] = w[i];
    });
    return out;
  };
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const refit = async (trainer: Trainer) => {
    const missing = names.find((n) => !trainer.weights.has(n));
    if (missing) throw new Error(`treeRegularizer: the trainer does not train '${missing}'; the surrogate reads every float32 initializer of the model`);
    const current = new Map(names.map((n) => [n, trainer.weights.get(n)!.data]));
    const saved = new Map([...current].map(([n, w]) => [n, w.slice()]));
    const theta = flatten(current);
    const rms = Math.sqrt(theta.reduce((a, v) => a + v * v, 0) / total);
    for (let j = 0; j <= perturbations; j++) {
      if (j > 0) for (const [n, w] of current) for (let i = 0; i < w.length; i++) w[i] = saved.get(n)![i] + noise * rms * gaussian();
      const predictions = (await trainer.evaluate(sample)).predictions;
      thetas.push(j === 0 ? theta : flatten(current));
      apls.push(treeCost(x, predictions, classes, minSamplesLeaf).apl);
      records.push({ step, perturbed: j > 0, apl: apls[apls.length - 1] });
    }
    for (const [n, w] of current) w.set(saved.get(n)!);
    if (thetas.length > keep) {
      thetas.splice(0, thetas.length - keep);
      apls.splice(0, apls.length - keep);
    }
    fits.push(surrogate.fit(thetas, apls, iterations));
    fitted = true;
  };
  const term: HostTerm = {
    name: 'tree',
    penalty(ws, grads) {
      if (!fitted) return 0;
      const g = new Float64Array(total);
      const value = strength * surrogate.predict(flatten(ws), { out: g, weight: strength });
      let o = 0;
      names.forEach((n, j) => {
        const gw = grads.get(n)!;
        for (let i = 0; i < sizes[j]; i++) gw[i] += g[o++];
      });
      return value;
    },
  };
  return {
    hostTerms: [term],
    transform: async (batch: Batch, trainer: Trainer) => {
      if (step % every === 0) await refit(trainer);
      step++;
      return batch;
    },
    records,
    fits,
  };
}

export interface TreeTrainingOptions extends TwinOptions, Omit<TreeRegularizerOptions, 'data' | 'seed'> {}

export interface TreeRegularizationResult {
  readonly method: 'tree-regularization';
  readonly taxonomy: Taxonomy;
  readonly strength: number;
  readonly regularized: TrainedRun;
  readonly twin: TrainedRun;
  /** Trees fitted to each trained network's predictions on the training inputs, with their APL and size. */
  readonly tree: { readonly regularized: TreeFit; readonly twin: TreeFit };
  readonly records: readonly TreeRecord[];
  readonly surrogateFits: readonly number[];
  readonly checks: readonly Check[];
  readonly ms: number;
}

const TREE_TAXONOMY = active('rules', 'global');

/**
 * Trains with the tree regulariser and its twin (Wu et al. 2018), then fits a tree to each network's predictions on
 * the training inputs: the claim is a smaller tree (lower APL, fewer nodes) at comparable accuracy.
 */
export async function trainTreeRegularized(model: ModelProto, options: TreeTrainingOptions): Promise<TreeRegularizationResult> {
  const t0 = performance.now();
  const reg = treeRegularizer(model, { ...options, data: options.train, seed: options.seed });
  const twins = await trainTwins(model, reg, options);
  const sample = options.train.slice(0, options.samples ?? 1000);
  const x = inputMatrix(sample);
  const classes = options.train.numClasses ?? 2;
  const leaf = options.minSamplesLeaf ?? 5;
  const tree = {
    regularized: treeCost(x, await predictedClasses(twins.regularized.model, sample), classes, leaf),
    twin: treeCost(x, await predictedClasses(twins.twin.model, sample), classes, leaf),
  };
  const last = reg.fits[reg.fits.length - 1] ?? NaN;
  return {
    method: 'tree-regularization',
    taxonomy: TREE_TAXONOMY,
    strength: options.strength,
    regularized: twins.regularized,
    twin: twins.twin,
    tree,
    records: reg.records,
    surrogateFits: reg.fits,
    checks: [
      ...twins.checks,
      {
        name: 'average path length',
        value: tree.regularized.apl - tree.twin.apl,
        passed: tree.regularized.apl < tree.twin.apl,
        detail: `APL of the tree fitted to the network's predictions ${tree.regularized.apl.toFixed(2)} (${tree.regularized.nodes} nodes, fidelity ${(100 * tree.regularized.fidelity).toFixed(1)}%) regularised vs ${tree.twin.apl.toFixed(2)} (${tree.twin.nodes} nodes, fidelity ${(100 * tree.twin.fidelity).toFixed(1)}%) for the twin`,
      },
      {
        name: 'surrogate fit',
        value: last,
        detail: `R² of the APL surrogate on its last ${Math.min(reg.records.length, options.keep ?? 200)} records after its last refit (${reg.fits.length} refits)`,
      },
    ],
    ms: performance.now() - t0,
  };
}

export const TREE_REGULARIZATION_METHODS = {
  'tree-regularization': {
    info: {
      title: 'Tree regularisation: penalise the decision path length of a tree fitted to the network, through a learned surrogate',
      reference: 'Wu et al. 2018, Beyond sparsity: tree regularization of deep models for interpretability',
      taxonomy: TREE_TAXONOMY,
      stochastic: true,
    },
    run: trainTreeRegularized,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
