/**
 * IF-THEN rules over numeric features: the list type shared by rule extraction methods, a tree's rules (one per leaf),
 * and a rule set learned by sequential covering in the manner of RIPPER's IREP* step (Cohen, "Fast Effective Rule
 * Induction", ICML 1995; Fürnkranz & Widmer, "Incremental Reduced Error Pruning", 1994): classes from rarest to most
 * frequent; for each, grow a rule on two thirds of the remaining examples by adding the condition with the highest
 * FOIL gain (Quinlan 1990) until it covers no negatives, prune its final conditions on the other third by
 * (p − n)/(p + n), keep it while its pruning-set error is below 1/2, remove what it covers, repeat; the most frequent
 * class is the default.
 *
 * @example
 * const rules = learnRuleSet({ data: x, rows: n, cols: 3 }, y, { seed: 1 });
 * rules.predict(x); // first rule that fires, else rules.defaultLabel
 */
import { mulberry32, shuffleInPlace } from '../../data/datasets/random.js';
import { checkMatrix, type DecisionTree, type Matrix, type TreeNode } from './tree.js';

export interface Condition {
  readonly feature: number;
  readonly op: '<=' | '>';
  readonly threshold: number;
}

export interface Rule {
  /** All must hold (an empty list always holds). */
  readonly conditions: readonly Condition[];
  readonly label: number;
}

/** Rules with a default: an ordered decision list (first rule that fires decides) or disjoint rules (a tree's leaves). */
export class RuleList {
  constructor(
    readonly rules: readonly Rule[],
    /** The class of examples no rule covers (null where the rules cover everything). */
    readonly defaultLabel: number | null,
    /** True for a decision list; false where the rules are disjoint and cover the space (a tree's leaves). */
    readonly ordered: boolean,
    readonly features: number,
    readonly classes: number,
  ) {}

  /** Conditions over all rules. */
  get antecedents(): number {
    return this.rules.reduce((a, r) => a + r.conditions.length, 0);
  }

  /** The rule that decides row `row` of `x` (rules.length for the default). */
  firing(x: Matrix, row: number): number {
    for (let k = 0; k < this.rules.length; k++) if (holds(this.rules[k].conditions, x, row)) return k;
    return this.rules.length;
  }

  predict(x: Matrix): Int32Array {
    checkMatrix('RuleList.predict', x, this.features);
    return Int32Array.from({ length: x.rows }, (_, r) => {
      const k = this.firing(x, r);
      if (k < this.rules.length) return this.rules[k].label;
      if (this.defaultLabel === null) throw new Error(`RuleList.predict: no rule covers row ${r} and there is no default`);
      return this.defaultLabel;
    });
  }
}

export function holds(conditions: readonly Condition[], x: Matrix, row: number): boolean {
  for (const c of conditions) {
    const v = x.data[row * x.cols + c.feature];
    if (c.op === '<=' ? !(v <= c.threshold) : !(v > c.threshold)) return false;
  }
  return true;
}

/**
 * One rule per leaf of the tree, after merging every subtree whose leaves all predict one class (predictions are
 * unchanged). Conditions on the same feature and direction along a path keep only the tightest.
 */
export function treeRules(tree: DecisionTree): RuleList {
  const rules: Rule[] = [];
  const labelOf = (n: TreeNode): number | null => {
    if (n.kind === 'leaf') return n.label;
    const l = labelOf(n.left);
    return l !== null && l === labelOf(n.right) ? l : null;
  };
  const walk = (n: TreeNode, path: Condition[]): void => {
    const label = labelOf(n);
    if (label !== null || n.kind === 'leaf') {
      rules.push({ conditions: simplify(path), label: n.kind === 'leaf' ? n.label : (label as number) });
      return;
    }
    walk(n.left, [...path, { feature: n.feature, op: '<=', threshold: n.threshold }]);
    walk(n.right, [...path, { feature: n.feature, op: '>', threshold: n.threshold }]);
  };
  walk(tree.root, []);
  return new RuleList(rules, null, false, tree.features, tree.classes);
}

/** The tightest bound per feature and direction, in order of first appearance. */
export function simplify(conditions: readonly Condition[]): Condition[] {
  const out: Condition[] = [];
  for (const c of conditions) {
    const k = out.findIndex((o) => o.feature === c.feature && o.op === c.op);
    if (k < 0) out.push(c);
    else if (c.op === '<=' ? c.threshold < out[k].threshold : c.threshold > out[k].threshold) out[k] = c;
  }
  return out;
}

export interface RuleSetOptions {
  /** Seed of the grow/prune split (default 0). */
  readonly seed?: number;
  /** Share of each class's remaining examples held out to prune a rule (default 1/3; 0 keeps rules unpruned). */
  readonly pruneFraction?: number;
  /** At most this many rules (default 64). */
  readonly maxRules?: number;
  /** At most this many conditions per rule (default 8). */
  readonly maxConditions?: number;
  /** Candidate thresholds per feature when growing a condition: midpoints at this many quantiles (default 64). */
  readonly thresholds?: number;
  /**
   * Fewest positives (by weight) a rule must cover among the remaining examples, a significance floor in the spirit
   * of CN2's and RIPPER's stopping tests (default 1% of the total weight, at least 2).
   */
  readonly minSupport?: number;
  /** A non-negative weight per example (default all 1). */
  readonly weights?: ArrayLike<number>;
  /** Number of classes (default: the largest label + 1). */
  readonly classes?: number;
}

/** A decision list learned by sequential covering (IREP*-style grow, prune, cover; see the module comment). */
export function learnRuleSet(x: Matrix, y: ArrayLike<number>, options: RuleSetOptions = {}): RuleList {
  const { seed = 0, pruneFraction = 1 / 3, maxRules = 64, maxConditions = 8, thresholds = 64 } = options;
  checkMatrix('learnRuleSet', x);
  if (x.rows === 0) throw new Error('learnRuleSet: no examples');
  if (y.length !== x.rows) throw new Error(`learnRuleSet: ${y.length} labels for ${x.rows} examples`);
  if (!(pruneFraction >= 0 && pruneFraction < 1)) throw new Error(`learnRuleSet: pruneFraction must be in [0, 1), got ${pruneFraction}`);
  for (const [k, v] of Object.entries({ maxRules, maxConditions, thresholds })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`learnRuleSet: ${k} must be a positive integer, got ${v}`);
  }
  let classes = options.classes ?? 0;
  for (let i = 0; i < y.length; i++) {
    if (!Number.isInteger(y[i]) || y[i] < 0 || (options.classes !== undefined && y[i] >= options.classes)) {
      throw new Error(`learnRuleSet: label ${i} is ${y[i]}, not a class index${options.classes !== undefined ? ` below ${options.classes}` : ''}`);
    }
    classes = Math.max(classes, y[i] + 1);
  }
  const w = options.weights ?? new Float64Array(x.rows).fill(1);
  if (w.length !== x.rows) throw new Error(`learnRuleSet: ${w.length} weights for ${x.rows} examples`);
  for (let i = 0; i < w.length; i++) if (!(w[i] >= 0) || !Number.isFinite(w[i])) throw new Error(`learnRuleSet: weight ${i} is ${w[i]}, not a finite number ≥ 0`);

  const freq = new Float64Array(classes);
  for (let i = 0; i < x.rows; i++) freq[y[i]] += w[i];
  const minSupport = options.minSupport ?? Math.max(2, 0.01 * freq.reduce((a, b) => a + b, 0));
  if (!(minSupport >= 0)) throw new Error(`learnRuleSet: minSupport must be a number ≥ 0, got ${minSupport}`);
  const order = Array.from({ length: classes }, (_, c) => c).filter((c) => freq[c] > 0).sort((a, b) => freq[a] - freq[b] || a - b);
  const rand = mulberry32(seed);
  const rules: Rule[] = [];
  let remaining = Int32Array.from({ length: x.rows }, (_, i) => i);
  for (const target of order.slice(0, -1)) {
    while (rules.length < maxRules) {
      if (!remaining.some((i) => y[i] === target && w[i] > 0)) break;
      const { grow, prune } = holdOut(remaining, (i) => y[i] === target, pruneFraction, rand);
      let conditions = growRule(x, y, w, grow, target, maxConditions, thresholds);
      if (conditions.length === 0) break;
      if (prune.length > 0) {
        conditions = pruneRule(x, y, w, prune, target, conditions);
        const { p, n } = coverage(x, y, w, prune, target, conditions);
        if (p + n > 0 && n / (p + n) >= 0.5) break; // no pruning-set example covered: no evidence against it
      }
      if (coverage(x, y, w, remaining, target, conditions).p < minSupport) break;
      rules.push({ conditions, label: target });
      remaining = remaining.filter((i) => !holds(conditions, x, i));
    }
  }
  // The default: the commonest class among what no rule covers (the most frequent class if nothing is left).
  const left = new Float64Array(classes);
  for (const i of remaining) left[y[i]] += w[i];
  const defaultLabel = left.some((v) => v > 0) ? argmax(left) : order[order.length - 1];
  return new RuleList(rules, defaultLabel, true, x.cols, classes);
}

/** Positives and negatives each split at random into a growing part and a pruning part of `fraction`. */
function holdOut(ix: Int32Array, positive: (i: number) => boolean, fraction: number, rand: () => number): { grow: Int32Array; prune: Int32Array } {
  const grow: number[] = [];
  const prune: number[] = [];
  for (const part of [ix.filter(positive), ix.filter((i) => !positive(i))]) {
    shuffleInPlace(part, rand);
    const cut = Math.floor(part.length * fraction);
    prune.push(...part.subarray(0, cut));
    grow.push(...part.subarray(cut));
  }
  return { grow: Int32Array.from(grow), prune: Int32Array.from(prune) };
}

/** Weighted positives and negatives of `ix` covered by the conditions. */
function coverage(x: Matrix, y: ArrayLike<number>, w: ArrayLike<number>, ix: Int32Array, target: number, conditions: readonly Condition[]): { p: number; n: number } {
  let p = 0;
  let n = 0;
  for (const i of ix) {
    if (!holds(conditions, x, i)) continue;
    if (y[i] === target) p += w[i];
    else n += w[i];
  }
  return { p, n };
}

/** Adds the condition of largest FOIL gain p₁(log₂ p₁/(p₁+n₁) − log₂ p₀/(p₀+n₀)) until no negative is covered. */
function growRule(x: Matrix, y: ArrayLike<number>, w: ArrayLike<number>, ix: Int32Array, target: number, maxConditions: number, maxThresholds: number): Condition[] {
  const conditions: Condition[] = [];
  let covered = ix;
  let { p, n } = coverage(x, y, w, covered, target, []);
  while (n > 0 && p > 0 && conditions.length < maxConditions) {
    const base = Math.log2(p / (p + n));
    let best: { c: Condition; gain: number } | null = null;
    for (let f = 0; f < x.cols; f++) {
      const sorted = Int32Array.from(covered).sort((a, b) => x.data[a * x.cols + f] - x.data[b * x.cols + f]);
      const m = sorted.length;
      // Prefix sums of positive and negative weight along the sorted order.
      const cp = new Float64Array(m + 1);
      const cn = new Float64Array(m + 1);
      for (let k = 0; k < m; k++) {
        const i = sorted[k];
        cp[k + 1] = cp[k] + (y[i] === target ? w[i] : 0);
        cn[k + 1] = cn[k] + (y[i] === target ? 0 : w[i]);
      }
      const step = Math.max(1, Math.floor(m / maxThresholds));
      for (let k = step; k < m; k += step) {
        // Move the cut to the next boundary between distinct values.
        let at = k;
        while (at < m && x.data[sorted[at] * x.cols + f] <= x.data[sorted[at - 1] * x.cols + f]) at++;
        if (at >= m) break;
        const lo = x.data[sorted[at - 1] * x.cols + f];
        const threshold = lo / 2 + x.data[sorted[at] * x.cols + f] / 2;
        for (const [op, p1, n1] of [['<=', cp[at], cn[at]], ['>', p - cp[at], n - cn[at]]] as const) {
          if (p1 <= 0) continue;
          const gain = p1 * (Math.log2(p1 / (p1 + n1)) - base);
          if (gain > 1e-12 && (!best || gain > best.gain)) best = { c: { feature: f, op, threshold }, gain };
        }
        k = at - (at % step); // continue from the boundary
      }
    }
    if (!best) break;
    conditions.push(best.c);
    const c = best.c;
    covered = covered.filter((i) => holds([c], x, i));
    ({ p, n } = coverage(x, y, w, covered, target, []));
  }
  return simplify(conditions);
}

/** The prefix of the conditions (at least one) with the best (p − n)/(p + n) on the pruning set; the shorter on ties. */
function pruneRule(x: Matrix, y: ArrayLike<number>, w: ArrayLike<number>, ix: Int32Array, target: number, conditions: Condition[]): Condition[] {
  let best = conditions;
  let bestValue = -Infinity;
  for (let len = 1; len <= conditions.length; len++) {
    const prefix = conditions.slice(0, len);
    const { p, n } = coverage(x, y, w, ix, target, prefix);
    const v = p + n > 0 ? (p - n) / (p + n) : -1;
    if (v > bestValue + 1e-12) {
      bestValue = v;
      best = prefix;
    }
  }
  return best;
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}
