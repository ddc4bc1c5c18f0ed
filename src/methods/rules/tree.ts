/**
 * CART classification trees (Breiman, Friedman, Olshen, Stone, "Classification and Regression Trees", 1984) with the
 * Gini impurity, grown as scikit-learn's `DecisionTreeClassifier` grows them (best-first over features in index order,
 * thresholds at midpoints between consecutive distinct values, `x <= threshold` goes left, the first best split wins
 * ties), so its trees can be checked against scikit-learn's. The surrogate model of pedagogical rule extraction.
 *
 * @example
 * const tree = fitTree({ data: x, rows: 150, cols: 4 }, labels, { maxDepth: 3, classes: 3 });
 * tree.root; // { kind: 'split', feature: 2, threshold: 2.45, ... }
 */

/** A row-major table of numbers: `data[r * cols + c]` is feature c of example r. */
export interface Matrix {
  readonly data: ArrayLike<number>;
  readonly rows: number;
  readonly cols: number;
}

export interface TreeOptions {
  /** Deepest level a split may sit at, the root at depth 0 (default: unlimited). */
  readonly maxDepth?: number;
  /** Fewest examples in either child of a split (default 1). */
  readonly minSamplesLeaf?: number;
  /** Fewest examples a node needs to be split (default 2). */
  readonly minSamplesSplit?: number;
  /** A non-negative weight per example (default all 1): class counts and impurities are weighted. */
  readonly weights?: ArrayLike<number>;
  /** Number of classes (default: the largest label + 1). */
  readonly classes?: number;
}

interface NodeBase {
  /** Weighted class counts of the training examples that reach the node. */
  readonly counts: Float64Array;
  /** Training examples that reach the node (unweighted). */
  readonly samples: number;
  readonly depth: number;
}

export interface Leaf extends NodeBase {
  readonly kind: 'leaf';
  /** The class with the largest weighted count (the first on ties). */
  readonly label: number;
}

export interface Split extends NodeBase {
  readonly kind: 'split';
  readonly feature: number;
  /** Examples with `x[feature] <= threshold` go left. */
  readonly threshold: number;
  readonly left: TreeNode;
  readonly right: TreeNode;
}

export type TreeNode = Leaf | Split;

/** A fitted tree with its size and predictions. */
export class DecisionTree {
  constructor(
    readonly root: TreeNode,
    readonly features: number,
    readonly classes: number,
  ) {}

  /** Splits on the longest path from the root to a leaf (a single leaf: 0). */
  get depth(): number {
    return reduce(this.root, () => 0, (l, r) => 1 + Math.max(l, r));
  }

  get leaves(): number {
    return reduce(this.root, () => 1, (l, r) => l + r);
  }

  /** The leaf each row of `x` falls into. */
  leafOf(x: Matrix, row: number): Leaf {
    let n = this.root;
    while (n.kind === 'split') n = x.data[row * x.cols + n.feature] <= n.threshold ? n.left : n.right;
    return n;
  }

  predict(x: Matrix): Int32Array {
    checkMatrix('DecisionTree.predict', x, this.features);
    return Int32Array.from({ length: x.rows }, (_, r) => this.leafOf(x, r).label);
  }
}

function reduce<T>(n: TreeNode, leaf: (l: Leaf) => T, split: (l: T, r: T, s: Split) => T): T {
  return n.kind === 'leaf' ? leaf(n) : split(reduce(n.left, leaf, split), reduce(n.right, leaf, split), n);
}

/** Grows a Gini CART tree on `x` (rows × cols) with integer class labels `y`. */
export function fitTree(x: Matrix, y: ArrayLike<number>, options: TreeOptions = {}): DecisionTree {
  const { maxDepth = Infinity, minSamplesLeaf = 1, minSamplesSplit = 2, weights } = options;
  checkMatrix('fitTree', x);
  if (x.rows === 0) throw new Error('fitTree: no examples');
  if (y.length !== x.rows) throw new Error(`fitTree: ${y.length} labels for ${x.rows} examples`);
  if (!(maxDepth >= 0) || (Number.isFinite(maxDepth) && !Number.isInteger(maxDepth))) {
    throw new Error(`fitTree: maxDepth must be a non-negative integer, got ${maxDepth}`);
  }
  if (!Number.isInteger(minSamplesLeaf) || minSamplesLeaf < 1) throw new Error(`fitTree: minSamplesLeaf must be a positive integer, got ${minSamplesLeaf}`);
  if (!Number.isInteger(minSamplesSplit) || minSamplesSplit < 2) throw new Error(`fitTree: minSamplesSplit must be an integer ≥ 2, got ${minSamplesSplit}`);
  let classes = options.classes ?? 0;
  for (let i = 0; i < y.length; i++) {
    if (!Number.isInteger(y[i]) || y[i] < 0) throw new Error(`fitTree: label ${i} is ${y[i]}, not a class index`);
    if (options.classes !== undefined && y[i] >= options.classes) throw new Error(`fitTree: label ${i} is ${y[i]}, but classes is ${options.classes}`);
    classes = Math.max(classes, y[i] + 1);
  }
  const w = weights ?? new Float64Array(x.rows).fill(1);
  if (w.length !== x.rows) throw new Error(`fitTree: ${w.length} weights for ${x.rows} examples`);
  for (let i = 0; i < w.length; i++) if (!(w[i] >= 0) || !Number.isFinite(w[i])) throw new Error(`fitTree: weight ${i} is ${w[i]}, not a finite number ≥ 0`);

  const grow = (ix: Int32Array, depth: number): TreeNode => {
    const counts = new Float64Array(classes);
    for (const i of ix) counts[y[i]] += w[i];
    const base = { counts, samples: ix.length, depth };
    const total = counts.reduce((a, b) => a + b, 0);
    const pure = counts.every((c) => c === 0 || c === total);
    const best = pure || depth >= maxDepth || ix.length < minSamplesSplit || ix.length < 2 * minSamplesLeaf ? null : bestGiniSplit(x, y, w, ix, classes, minSamplesLeaf);
    if (!best) return { kind: 'leaf', ...base, label: argmax(counts) };
    const left = ix.filter((i) => x.data[i * x.cols + best.feature] <= best.threshold);
    const right = ix.filter((i) => !(x.data[i * x.cols + best.feature] <= best.threshold));
    return { kind: 'split', ...base, feature: best.feature, threshold: best.threshold, left: grow(left, depth + 1), right: grow(right, depth + 1) };
  };
  return new DecisionTree(grow(Int32Array.from({ length: x.rows }, (_, i) => i), 0), x.cols, classes);
}

/**
 * The split of the examples `ix` with the lowest weighted child Gini impurity, as scikit-learn's BestSplitter finds
 * it: for each feature, sort by value and try the midpoint between every pair of consecutive distinct values
 * (farther apart than 1e-7) that leaves at least `minLeaf` examples on each side. Maximising Σ c²/w over both
 * children is minimising w_l·Gini_l + w_r·Gini_r. Null when every feature is constant on `ix`.
 */
export function bestGiniSplit(x: Matrix, y: ArrayLike<number>, w: ArrayLike<number>, ix: Int32Array, classes: number, minLeaf: number): { feature: number; threshold: number } | null {
  const n = ix.length;
  const total = new Float64Array(classes);
  for (const i of ix) total[y[i]] += w[i];
  const left = new Float64Array(classes);
  const values = new Float64Array(n);
  const order = new Int32Array(n);
  let best: { feature: number; threshold: number } | null = null;
  let bestScore = -Infinity;
  for (let f = 0; f < x.cols; f++) {
    for (let k = 0; k < n; k++) order[k] = ix[k];
    order.sort((a, b) => x.data[a * x.cols + f] - x.data[b * x.cols + f]);
    for (let k = 0; k < n; k++) values[k] = x.data[order[k] * x.cols + f];
    if (values[n - 1] <= values[0] + 1e-7) continue;
    left.fill(0);
    let wl = 0;
    const wt = total.reduce((a, b) => a + b, 0);
    for (let k = 1; k < n; k++) {
      const i = order[k - 1];
      left[y[i]] += w[i];
      wl += w[i];
      if (values[k] <= values[k - 1] + 1e-7 || k < minLeaf || n - k < minLeaf) continue;
      const wr = wt - wl;
      let sl = 0;
      let sr = 0;
      for (let c = 0; c < classes; c++) {
        sl += left[c] * left[c];
        const r = total[c] - left[c];
        sr += r * r;
      }
      const score = (wl > 0 ? sl / wl : 0) + (wr > 0 ? sr / wr : 0);
      if (score > bestScore) {
        bestScore = score;
        let threshold = values[k - 1] / 2 + values[k] / 2;
        if (threshold === values[k]) threshold = values[k - 1]; // keep `<=` on the left side for adjacent floats
        best = { feature: f, threshold };
      }
    }
  }
  return best;
}

/** The index of the largest entry (the first on ties). */
export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/** Throws unless `x` is a well-formed matrix of finite numbers (with `cols` columns, where given). */
export function checkMatrix(where: string, x: Matrix, cols?: number): void {
  if (!Number.isInteger(x.rows) || x.rows < 0 || !Number.isInteger(x.cols) || x.cols < 1) {
    throw new Error(`${where}: bad matrix size ${x.rows}×${x.cols}`);
  }
  if (x.data.length !== x.rows * x.cols) throw new Error(`${where}: ${x.data.length} values for a ${x.rows}×${x.cols} matrix`);
  if (cols !== undefined && x.cols !== cols) throw new Error(`${where}: ${x.cols} features, the tree was fitted on ${cols}`);
  for (let i = 0; i < x.data.length; i++) {
    if (!Number.isFinite(x.data[i])) throw new Error(`${where}: value ${x.data[i]} at row ${Math.floor(i / x.cols)}, feature ${i % x.cols} is not finite`);
  }
}
