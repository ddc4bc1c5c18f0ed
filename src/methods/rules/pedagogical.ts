/**
 * Global, pedagogical rule extraction (Zhang et al. 2021, §III-A): treat the network as an oracle, label data with
 * its predictions, and fit a readable model to those labels — a CART tree or a sequential-covering rule set.
 * Querying follows Trepan (Craven & Shavlik, "Extracting Tree-Structured Representations of Trained Networks",
 * NIPS 1996): the network also labels synthetic inputs drawn around the data (features.ts): half of the query
 * budget around the whole training set, and (trees only) the other half while the tree grows, for each node left
 * with fewer than `minSamples` examples, drawn around that node's examples and kept where they satisfy its
 * conditions, so deep splits are still chosen on enough examples.
 *
 * The criteria are the survey's: fidelity to the network on held-out data (the main one), accuracy on the true
 * labels, and size (rules, antecedents, depth, leaves); fidelity is checked against the majority-class baseline and
 * against the same learner fitted without queries.
 *
 * @example
 * const [train, test] = split(await loadIris(), [0.7, 0.3], { seed: 1, stratify: true });
 * const r = await extractRules(model, train, test, { kind: 'tree', maxDepth: 3, queries: 1000 });
 * console.log(formatRules(r)); // IF petal width (cm) > 1.75 AND … THEN virginica  [coverage 0.31, fidelity 0.98]
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import { argmaxRows } from '../../util/softmax.js';
import { unknownNameError } from '../../util/nearest.js';
import type { Check } from '../attribution/explanation.js';
import { passive, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { DEFAULT_MIX, featureSpaceOf, Pool, sampleAround, sampleInside, type FeatureSpace, type SampleOptions } from './features.js';
import { holds, learnRuleSet, treeRules, type Condition, type RuleList } from './rule-set.js';
import { argmax, bestGiniSplit, DecisionTree, fitTree, type Matrix, type TreeNode } from './tree.js';

export interface ExtractOptions extends SampleOptions {
  /** A CART tree (default) or a sequential-covering decision list. */
  readonly kind?: 'tree' | 'rules';
  /** The features rules are written in (default: the dataset's named features, or 4×4 patches of images). */
  readonly features?: FeatureSpace;
  /** Tree depth (default 4). */
  readonly maxDepth?: number;
  /** Fewest examples per tree leaf (default 1). */
  readonly minSamplesLeaf?: number;
  /** Synthetic inputs the network labels, in all (default 2 × the training set; 0: no querying). */
  readonly queries?: number;
  /**
   * Weight of each synthetic example relative to a real one when fitting (default 1, as Trepan; smaller values let
   * queries settle splits where data is thin without outvoting the data where it is not).
   */
  readonly queryWeight?: number;
  /** Trepan's per-node minimum: tree nodes with fewer examples get queries drawn inside them (default 40). */
  readonly minSamples?: number;
  /** At most this many rules of a rule set (default 32). */
  readonly maxRules?: number;
  readonly seed?: number;
  /** Model input and output (default: the first of each); the output holds class scores [B, classes]. */
  readonly input?: string;
  readonly output?: string;
  /** Rows per network call (default 256). */
  readonly batchSize?: number;
}

/** How a rule does on the held-out data: the share of examples it decides, and its agreement with the network there. */
export interface RuleStats {
  readonly coverage: number;
  readonly fidelity: number;
  /** Held-out examples it decides. */
  readonly support: number;
}

export interface RuleExtraction {
  readonly method: keyof typeof PEDAGOGICAL_METHODS;
  readonly taxonomy: Taxonomy;
  readonly kind: 'tree' | 'rules';
  readonly rules: RuleList;
  /** The tree the rules were read from (kind 'tree'). */
  readonly tree?: DecisionTree;
  readonly featureNames: readonly string[];
  readonly classNames: readonly string[];
  /** One per rule, then the default rule (decision lists only). */
  readonly ruleStats: readonly RuleStats[];
  /** Agreement with the network's predictions on the held-out data. */
  readonly fidelity: number;
  /** Agreement of the rules with the true labels on the held-out data, and of the network. */
  readonly accuracy: number;
  readonly networkAccuracy: number;
  readonly baselines: { readonly majority: number; readonly noQueries: number };
  readonly size: { readonly rules: number; readonly antecedents: number; readonly depth: number; readonly leaves: number };
  /** Network queries on synthetic inputs: over the whole data, inside thin tree nodes, in all. */
  readonly queries: { readonly global: number; readonly nodes: number; readonly total: number };
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

/**
 * Fits a tree or rule set to the network's labels on `train` plus queries, and evaluates it on `test` (streamed).
 * The training part's inputs stay in memory, queries are drawn around them: pass a slice of a large dataset.
 */
export async function extractRules(model: Model, train: Dataset, test: Dataset, options: ExtractOptions = {}): Promise<RuleExtraction> {
  const t0 = performance.now();
  const { kind = 'tree', maxDepth = 4, minSamplesLeaf = 1, minSamples = 40, maxRules = 32, seed = 0, batchSize = 256, queryWeight = 1 } = options;
  if (kind !== 'tree' && kind !== 'rules') throw new Error(`extractRules: kind must be 'tree' or 'rules', got '${String(kind)}'`);
  const space = options.features ?? featureSpaceOf(train);
  for (const ds of [train, test]) {
    if (ds.size === 0) throw new Error(`extractRules: dataset ${ds.name} is empty`);
    if (ds.inputShape.join() !== space.inputShape.join()) {
      throw new Error(`extractRules: ${ds.name} has inputs ${JSON.stringify(ds.inputShape)}, the feature space reads ${JSON.stringify(space.inputShape)}`);
    }
  }
  const queries = options.queries ?? 2 * train.size;
  for (const [k, v] of Object.entries({ maxDepth, minSamplesLeaf, minSamples, maxRules, batchSize, queries })) {
    const zeroOk = k === 'queries' || k === 'minSamples' || k === 'maxDepth';
    if (!Number.isInteger(v) || v < (zeroOk ? 0 : 1)) throw new Error(`extractRules: ${k} must be a ${zeroOk ? 'non-negative' : 'positive'} integer, got ${v}`);
  }
  if (!(queryWeight > 0) || !Number.isFinite(queryWeight)) throw new Error(`extractRules: queryWeight must be a finite number > 0, got ${queryWeight}`);
  const oracle = networkOracle(model, space, options.input, options.output, batchSize);
  const rand = mulberry32(seed);
  const sampling: SampleOptions = { mix: options.mix, bandwidth: options.bandwidth };

  // The network's labels on the training data, then on queries drawn around all of it.
  const real = await labelDataset(oracle, space, train, batchSize, true);
  const pool = real.copy();
  const globalQueries = kind === 'tree' && minSamples > 0 ? Math.ceil(queries / 2) : queries;
  if (globalQueries > 0) await append(pool, oracle, space, sampleAround(space, real.inputs, globalQueries, rand, sampling), queryWeight);

  const classes = oracle.classes;
  const names = space.names;
  const matrix = (p: Pool): Matrix => ({ data: p.features, rows: p.labels.length, cols: names.length });
  const fitRules = (p: Pool): RuleList => learnRuleSet(matrix(p), p.labels, { classes, seed, maxRules, weights: p.weights });
  let rules: RuleList;
  let tree: DecisionTree | undefined;
  let nodeQueries = 0;
  if (kind === 'rules') {
    rules = fitRules(pool);
  } else {
    const grown = await growTrepanTree(pool, oracle, space, { maxDepth, minSamplesLeaf, minSamples, budget: queries - globalQueries, rand, sampling, classes, queryWeight });
    tree = grown.tree;
    nodeQueries = grown.added;
    rules = treeRules(tree);
  }

  // Held-out evaluation against the network and the true labels.
  const held = await labelDataset(oracle, space, test, batchSize, false);
  const truth = trueLabels(test);
  const xt = matrix(held);
  const agree = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
    let s = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === b[i]) s++;
    return s / a.length;
  };
  const predicted = rules.predict(xt);
  const fidelity = agree(predicted, held.labels);
  const accuracy = agree(predicted, truth);
  const networkAccuracy = agree(held.labels, truth);
  const majority = agree(new Int32Array(held.labels.length).fill(argmax(classCounts(real.labels, classes))), held.labels);
  const unqueried = kind === 'rules' ? fitRules(real) : treeRules(fitTree(matrix(real), real.labels, { maxDepth, minSamplesLeaf, classes }));
  const noQueries = queries === 0 ? fidelity : agree(unqueried.predict(xt), held.labels);
  const size = {
    rules: rules.rules.length + (rules.defaultLabel !== null ? 1 : 0),
    antecedents: rules.antecedents,
    depth: tree ? tree.depth : Math.max(0, ...rules.rules.map((r) => r.conditions.length)),
    leaves: tree ? tree.leaves : rules.rules.length + 1,
  };
  const method = kind === 'tree' ? 'trepan-tree' : 'covering-rules';
  const checks: Check[] = [
    {
      name: 'fidelity vs majority',
      value: fidelity,
      passed: fidelity > majority,
      detail: `agreement with the network on ${held.labels.length} held-out examples ${fidelity.toFixed(3)} vs ${majority.toFixed(3)} for always predicting the network's commonest class`,
    },
    {
      name: 'fidelity vs no queries',
      value: fidelity - noQueries,
      passed: fidelity >= noQueries,
      detail: `held-out fidelity ${fidelity.toFixed(3)} with ${globalQueries + nodeQueries} queries vs ${noQueries.toFixed(3)} for the same learner on the training data alone`,
    },
    { name: 'accuracy', value: accuracy, detail: `rules vs true labels ${accuracy.toFixed(3)}; the network itself ${networkAccuracy.toFixed(3)}` },
    {
      name: 'size',
      value: [size.rules, size.antecedents, size.depth, size.leaves],
      detail: `${size.rules} rules, ${size.antecedents} antecedents, depth ${size.depth}, ${size.leaves} leaves`,
    },
  ];
  return {
    method,
    taxonomy: PEDAGOGICAL_METHODS[method].info.taxonomy,
    kind,
    rules,
    ...(tree ? { tree } : {}),
    featureNames: names,
    classNames: train.classNames?.length === classes ? train.classNames : Array.from({ length: classes }, (_, c) => String(c)),
    ruleStats: statsPerRule(rules, xt, held.labels),
    fidelity,
    accuracy,
    networkAccuracy,
    baselines: { majority, noQueries },
    size,
    queries: { global: globalQueries, nodes: nodeQueries, total: globalQueries + nodeQueries },
    checks,
    params: {
      kind, features: space.kind, maxDepth, minSamplesLeaf, minSamples, maxRules, queries, queryWeight, seed,
      mix: options.mix ?? DEFAULT_MIX, bandwidth: options.bandwidth ?? space.bandwidth, train: train.size, test: test.size,
    },
    ms: performance.now() - t0,
  };
}

interface GrowOptions {
  readonly maxDepth: number;
  readonly minSamplesLeaf: number;
  readonly minSamples: number;
  readonly budget: number;
  readonly rand: () => number;
  readonly sampling: SampleOptions;
  readonly classes: number;
  readonly queryWeight: number;
}

/**
 * Trepan's tree growth: before choosing a node's split, a node with fewer than `minSamples` examples gets queries
 * drawn around its examples inside its conditions, labelled by the network; they count for that node and the
 * nodes below it only. Splits are CART's (Gini) on the node's real and queried examples.
 */
async function growTrepanTree(pool: Pool, oracle: Oracle, space: FeatureSpace, o: GrowOptions): Promise<{ tree: DecisionTree; added: number }> {
  const f = space.names.length;
  const d = space.inputShape.reduce((a, b) => a * b, 1);
  let added = 0;
  const grow = async (members: Int32Array, path: Condition[], depth: number): Promise<TreeNode> => {
    let ix = members;
    const want = Math.min(o.minSamples - ix.length, o.budget - added);
    if (want > 0 && ix.length > 0 && depth <= o.maxDepth) {
      const around = new Float32Array(ix.length * d); // [members, D]
      ix.forEach((m, k) => around.set(pool.inputs.subarray(m * d, (m + 1) * d), k * d));
      const drawn = sampleInside(space, around, (row) => holds(path, { data: row, rows: 1, cols: f }, 0), want, o.rand, o.sampling);
      if (drawn) {
        const start = pool.labels.length;
        await append(pool, oracle, space, drawn, o.queryWeight);
        added += pool.labels.length - start;
        ix = Int32Array.from([...ix, ...Array.from({ length: pool.labels.length - start }, (_, k) => start + k)]);
      }
    }
    const x: Matrix = { data: pool.features, rows: pool.labels.length, cols: f };
    const counts = new Float64Array(o.classes);
    for (const i of ix) counts[pool.labels[i]] += pool.weights[i];
    const base = { counts, samples: ix.length, depth };
    const total = counts.reduce((a, b) => a + b, 0);
    const pure = counts.every((c) => c === 0 || c === total);
    const best = pure || depth >= o.maxDepth || ix.length < 2 * o.minSamplesLeaf ? null : bestGiniSplit(x, pool.labels, pool.weights, ix, o.classes, o.minSamplesLeaf);
    if (!best) return { kind: 'leaf', ...base, label: argmax(counts) };
    const le: Condition = { feature: best.feature, op: '<=', threshold: best.threshold };
    const gt: Condition = { feature: best.feature, op: '>', threshold: best.threshold };
    const left = ix.filter((i) => x.data[i * f + best.feature] <= best.threshold);
    const right = ix.filter((i) => !(x.data[i * f + best.feature] <= best.threshold));
    const l = await grow(left, [...path, le], depth + 1);
    const r = await grow(right, [...path, gt], depth + 1);
    return { kind: 'split', ...base, feature: best.feature, threshold: best.threshold, left: l, right: r };
  };
  const root = await grow(Int32Array.from({ length: pool.labels.length }, (_, i) => i), [], 0);
  return { tree: new DecisionTree(root, f, o.classes), added };
}

/** The network as a labelling function on inputs [B, ...]: argmax of the class scores. */
interface Oracle {
  readonly classes: number;
  label(x: Tensor<'float32'>): Promise<Int32Array>;
}

function networkOracle(model: Model, space: FeatureSpace, input: string | undefined, output: string | undefined, batchSize: number): Oracle {
  const inputs = model.inputs.map((i) => i.name);
  const outputs = model.outputs.map((o) => o.name);
  const inName = input ?? inputs[0];
  const outName = output ?? outputs[0];
  if (!inputs.includes(inName)) throw unknownNameError('input', inName, inputs);
  if (!outputs.includes(outName)) throw unknownNameError('output', outName, outputs);
  const declared = model.outputs.find((o) => o.name === outName)?.shape;
  const last = declared?.[declared.length - 1];
  const state = { classes: typeof last === 'number' ? last : 0 };
  return {
    get classes() {
      return state.classes;
    },
    async label(x) {
      const n = x.shape[0];
      const per = x.size / Math.max(1, n);
      const out = new Int32Array(n);
      for (let s = 0; s < n; s += batchSize) {
        const e = Math.min(n, s + batchSize);
        const chunk = new Tensor('float32', x.data.subarray(s * per, e * per), [e - s, ...space.inputShape]);
        const y = (await model.run({ [inName]: chunk })).outputs[outName];
        if (y.shape.length !== 2 || y.shape[0] !== e - s) {
          throw new Error(`rules: output '${outName}' has shape ${JSON.stringify(y.shape)} for ${e - s} inputs; expected class scores [B, classes]`);
        }
        state.classes = y.shape[1];
        out.set(argmaxRows(y, y.shape[1]), s);
      }
      return out;
    },
  };
}

/** Inputs (if kept), features and network labels of a whole dataset, streamed from it in batches. */
async function labelDataset(oracle: Oracle, space: FeatureSpace, ds: Dataset, batchSize: number, keepInputs: boolean): Promise<Pool> {
  const d = space.inputShape.reduce((a, b) => a * b, 1);
  const pool = new Pool(keepInputs ? d : 0, space.names.length);
  for (const { x } of ds.batches(batchSize)) {
    const xf = x as Tensor<'float32'>;
    for (let i = 0; i < xf.data.length; i++) {
      if (!Number.isFinite(xf.data[i])) throw new Error(`rules: ${ds.name} example ${pool.size + Math.floor(i / d)} has a non-finite input value ${xf.data[i]}`);
    }
    pool.push(xf.data, space.encode(xf), await oracle.label(xf), 1);
  }
  return pool;
}

/** Queries: the network labels them, and they join the pool with the given fitting weight. */
async function append(pool: Pool, oracle: Oracle, space: FeatureSpace, x: Tensor<'float32'>, weight: number): Promise<void> {
  pool.push(x.data, space.encode(x), await oracle.label(x), weight);
}

/** Held-out coverage and fidelity of each rule (and the default rule of a decision list). */
function statsPerRule(rules: RuleList, x: Matrix, network: Int32Array): RuleStats[] {
  const k = rules.rules.length + (rules.defaultLabel !== null ? 1 : 0);
  const decided = new Float64Array(k);
  const agreed = new Float64Array(k);
  for (let i = 0; i < x.rows; i++) {
    const r = rules.firing(x, i);
    if (r >= k) continue;
    const label = r < rules.rules.length ? rules.rules[r].label : (rules.defaultLabel as number);
    decided[r]++;
    if (label === network[i]) agreed[r]++;
  }
  return Array.from(decided, (n, r) => ({ coverage: n / x.rows, fidelity: n > 0 ? agreed[r] / n : NaN, support: n }));
}

function trueLabels(ds: Dataset): Int32Array {
  if (ds.labels === undefined) throw new Error(`rules: ${ds.name} has no per-example class labels to measure accuracy on`);
  return Int32Array.from(ds.labels);
}

function classCounts(labels: Int32Array, classes: number): Float64Array {
  const counts = new Float64Array(Math.max(classes, 1));
  for (const l of labels) counts[l]++;
  return counts;
}

/** The registry of pedagogical (network-as-oracle) global rule extraction methods. */
export const PEDAGOGICAL_METHODS = {
  'trepan-tree': {
    info: {
      title: 'Decision tree fitted to the network (Trepan-style querying)',
      reference: 'Craven & Shavlik 1996, Extracting tree-structured representations of trained networks',
      taxonomy: passive('rules', 'global'),
      stochastic: true,
    },
    run: (model: Model, train: Dataset, test: Dataset, options?: Omit<ExtractOptions, 'kind'>) => extractRules(model, train, test, { ...options, kind: 'tree' }),
  },
  'covering-rules': {
    info: {
      title: 'Rule set fitted to the network by sequential covering',
      reference: 'Cohen 1995, Fast effective rule induction (RIPPER); Craven & Shavlik 1996 (querying)',
      taxonomy: passive('rules', 'global'),
      stochastic: true,
    },
    run: (model: Model, train: Dataset, test: Dataset, options?: Omit<ExtractOptions, 'kind'>) => extractRules(model, train, test, { ...options, kind: 'rules' }),
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
