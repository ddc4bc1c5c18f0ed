/**
 * CART against closed forms and scikit-learn's DecisionTreeClassifier (fixtures/rules/sklearn-trees.json, made by
 * scripts/make-tree-fixture.py), and the sequential-covering rule set against planted rules.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadBreastCancer, loadIris, loadWine, mulberry32, type Dataset } from '../../../src/data/datasets/index.js';
import { learnRuleSet, treeRules, type Condition } from '../../../src/methods/rules/rule-set.js';
import { fitTree, type Matrix, type TreeNode } from '../../../src/methods/rules/tree.js';
import { ruleLines, rulesJson } from '../../../src/methods/rules/format.js';

const whole = (ds: Dataset): { x: Matrix; y: Int32Array } => {
  const { x } = ds.gather(Array.from({ length: ds.size }, (_, i) => i));
  return { x: { data: x.data as Float32Array, rows: ds.size, cols: ds.inputShape[0] }, y: Int32Array.from(ds.labels ?? []) };
};

/** Σ over both children of w·Gini, computed directly. */
function childGini(x: Matrix, y: Int32Array, ix: number[], feature: number, threshold: number, classes: number): number {
  let total = 0;
  for (const side of [ix.filter((i) => x.data[i * x.cols + feature] <= threshold), ix.filter((i) => x.data[i * x.cols + feature] > threshold)]) {
    const c = new Array<number>(classes).fill(0);
    for (const i of side) c[y[i]]++;
    total += side.length - c.reduce((a, v) => a + (v * v) / Math.max(1, side.length), 0);
  }
  return total;
}

test('the root of a Gini tree on iris is petal length <= 2.45, setosa (50) against the rest (100)', async () => {
  const { x, y } = whole(await loadIris());
  const tree = fitTree(x, y, { maxDepth: 1 });
  const root = tree.root;
  assert.equal(root.kind, 'split');
  if (root.kind !== 'split') return;
  assert.equal(root.feature, 2); // petal length (cm)
  // The midpoint of 1.9 and 3.0 as float32 values, as scikit-learn computes it (printed 2.45).
  assert.equal(root.threshold, Math.fround(1.9) / 2 + 3.0 / 2);
  assert.deepEqual([...root.left.counts], [50, 0, 0]);
  assert.deepEqual([...root.right.counts], [0, 50, 50]);
  assert.equal(root.left.samples, 50);
  assert.equal(root.right.samples, 100);
  // Petal width <= 0.8 separates the same flowers: an exact tie, which goes to the first feature.
  const all = Array.from({ length: 150 }, (_, i) => i);
  assert.equal(childGini(x, y, all, 3, 0.8, 3), childGini(x, y, all, 2, root.threshold, 3));
  assert.equal(childGini(x, y, all, 2, root.threshold, 3), 100 * 0.5);
});

interface SkNode {
  feature: number | null;
  threshold: number | null;
  left: number | null;
  right: number | null;
  samples: number;
  counts: number[];
}
interface SkCase {
  dataset: string;
  params: { max_depth: number; min_samples_leaf?: number };
  depth: number;
  leaves: number;
  nodes: SkNode[];
  predictions: number[];
}

test('trees match scikit-learn 1.2 on iris, wine and breast cancer (splits, counts, predictions; ties either way)', async () => {
  const path = fileURLToPath(new URL('../../../../fixtures/rules/sklearn-trees.json', import.meta.url));
  const fixture = JSON.parse(readFileSync(path, 'utf8')) as { cases: SkCase[] };
  const loaders: Record<string, () => Promise<Dataset>> = { iris: loadIris, wine: loadWine, 'breast-cancer': loadBreastCancer };
  let compared = 0;
  let ties = 0;
  for (const c of fixture.cases) {
    const { x, y } = whole(await loaders[c.dataset]());
    const classes = c.nodes[0].counts.length;
    const tree = fitTree(x, y, { maxDepth: c.params.max_depth, minSamplesLeaf: c.params.min_samples_leaf ?? 1 });
    assert.deepEqual([...tree.predict(x)], c.predictions, `${c.dataset}: predictions`);
    assert.equal(tree.depth, c.depth, `${c.dataset}: depth`);
    assert.equal(tree.leaves, c.leaves, `${c.dataset}: leaves`);
    // Walk both trees together; where they split differently the two splits must be an exact tie in impurity.
    const walk = (mine: TreeNode, k: number, ix: number[]): void => {
      const sk = c.nodes[k];
      assert.equal(mine.samples, sk.samples, `${c.dataset} node ${k}: samples`);
      assert.deepEqual([...mine.counts], sk.counts, `${c.dataset} node ${k}: class counts`);
      assert.equal(mine.kind === 'leaf', sk.feature === null, `${c.dataset} node ${k}: leaf or split`);
      if (mine.kind === 'leaf' || sk.feature === null || sk.threshold === null || sk.left === null || sk.right === null) return;
      compared++;
      if (mine.feature !== sk.feature || mine.threshold !== sk.threshold) {
        ties++;
        const a = childGini(x, y, ix, mine.feature, mine.threshold, classes);
        const b = childGini(x, y, ix, sk.feature, sk.threshold, classes);
        assert.ok(Math.abs(a - b) < 1e-9, `${c.dataset} node ${k}: split ${mine.feature} <= ${mine.threshold} (${a}) vs scikit-learn ${sk.feature} <= ${sk.threshold} (${b})`);
        return;
      }
      walk(mine.left, sk.left, ix.filter((i) => x.data[i * x.cols + mine.feature] <= mine.threshold));
      walk(mine.right, sk.right, ix.filter((i) => x.data[i * x.cols + mine.feature] > mine.threshold));
    };
    walk(tree.root, 0, Array.from({ length: x.rows }, (_, i) => i));
  }
  assert.ok(compared >= 15 && ties <= 4, `${compared} splits compared, ${ties} ties`);
});

/** Integer features 0..9 on a full grid, labelled by a known depth-2 tree. */
function plantedTree(): { x: Matrix; y: Int32Array } {
  const rows: number[] = [];
  const y: number[] = [];
  for (let a = 0; a < 10; a++) {
    for (let b = 0; b < 10; b++) {
      for (let c = 0; c < 10; c++) {
        rows.push(a, b, c);
        // x1 <= 3.5 ? (x2 <= 6.5 ? 0 : 1) : 2
        y.push(b <= 3 ? (c <= 6 ? 0 : 1) : 2);
      }
    }
  }
  return { x: { data: Float32Array.from(rows), rows: y.length, cols: 3 }, y: Int32Array.from(y) };
}

test('a tree fitted to data labelled by a known tree recovers it exactly', () => {
  const { x, y } = plantedTree();
  const tree = fitTree(x, y, { maxDepth: 5 });
  const r = tree.root;
  assert.ok(r.kind === 'split' && r.feature === 1 && r.threshold === 3.5);
  if (r.kind !== 'split') return;
  assert.ok(r.right.kind === 'leaf' && r.right.label === 2 && r.right.samples === 600);
  assert.ok(r.left.kind === 'split' && r.left.feature === 2 && r.left.threshold === 6.5);
  if (r.left.kind !== 'split') return;
  assert.ok(r.left.left.kind === 'leaf' && r.left.left.label === 0 && r.left.left.samples === 280);
  assert.ok(r.left.right.kind === 'leaf' && r.left.right.label === 1);
  assert.equal(tree.depth, 2);
  assert.equal(tree.leaves, 3);
  // Its rules say the same, and predict as the tree does.
  const rules = treeRules(tree);
  assert.deepEqual(ruleLines(rules, ['a', 'b', 'c'], ['zero', 'one', 'two']), [
    'IF b <= 3.5 AND c <= 6.5 THEN zero',
    'IF b <= 3.5 AND c > 6.5 THEN one',
    'IF b > 3.5 THEN two',
  ]);
  assert.deepEqual(rules.predict(x), tree.predict(x));
  assert.deepEqual(rulesJson(rules, ['a', 'b', 'c'], ['zero', 'one', 'two'])[2], { if: [{ feature: 'b', op: '>', threshold: 3.5 }], then: 'two', class: 2 });
});

test('integer weights act as repeated examples; depth and leaf size limits hold', async () => {
  const { x, y } = whole(await loadWine());
  const weights = Float64Array.from({ length: x.rows }, (_, i) => 1 + (i % 3));
  const repeated: number[] = [];
  const ry: number[] = [];
  for (let i = 0; i < x.rows; i++) {
    for (let k = 0; k < weights[i]; k++) {
      for (let f = 0; f < x.cols; f++) repeated.push(x.data[i * x.cols + f]);
      ry.push(y[i]);
    }
  }
  const a = fitTree(x, y, { maxDepth: 3, weights });
  const b = fitTree({ data: Float32Array.from(repeated), rows: ry.length, cols: x.cols }, ry, { maxDepth: 3 });
  assert.deepEqual(a.predict(x), b.predict(x));
  const splits = (n: TreeNode): string => (n.kind === 'leaf' ? `L${n.label}` : `(${n.feature}<=${n.threshold} ${splits(n.left)} ${splits(n.right)})`);
  assert.equal(splits(a.root), splits(b.root));

  const stump = fitTree(x, y, { maxDepth: 0 });
  assert.ok(stump.root.kind === 'leaf' && stump.root.label === 1); // 71 of 178 wines are class 1
  const leafy = fitTree(x, y, { minSamplesLeaf: 20 });
  const minLeaf = (n: TreeNode): number => (n.kind === 'leaf' ? n.samples : Math.min(minLeaf(n.left), minLeaf(n.right)));
  assert.ok(minLeaf(leafy.root) >= 20);
  assert.ok(fitTree(x, y).predict(x).every((p, i) => p === y[i]), 'an unlimited tree fits distinct training points exactly');
});

test('bad inputs fail with the culprit named', () => {
  const x: Matrix = { data: Float32Array.of(1, 2, NaN, 4), rows: 2, cols: 2 };
  assert.throws(() => fitTree(x, [0, 1]), /value NaN at row 1, feature 0 is not finite/);
  assert.throws(() => fitTree({ data: Float32Array.of(1, 2), rows: 2, cols: 1 }, [0]), /1 labels for 2 examples/);
  assert.throws(() => fitTree({ data: Float32Array.of(1, 2), rows: 2, cols: 1 }, [0, -1]), /label 1 is -1/);
  assert.throws(() => fitTree({ data: Float32Array.of(1, 2), rows: 2, cols: 1 }, [0, 1], { maxDepth: 1.5 }), /maxDepth/);
  assert.throws(() => learnRuleSet({ data: Float32Array.of(1, 2), rows: 2, cols: 1 }, [0, 1], { maxRules: 0 }), /maxRules must be a positive integer/);
  const tree = fitTree({ data: Float32Array.of(1, 2), rows: 2, cols: 1 }, [0, 1]);
  assert.throws(() => tree.predict({ data: Float32Array.of(1, 2), rows: 1, cols: 2 }), /2 features, the tree was fitted on 1/);
});

/** Uniform points in [0, 1]³ labelled 1 by (x0 > 0.6 AND x2 <= 0.3) OR x1 > 0.85, else 0. */
function plantedRules(n: number, seed: number): { x: Matrix; y: Int32Array } {
  const rand = mulberry32(seed);
  const data = Float32Array.from({ length: n * 3 }, () => rand());
  const y = Int32Array.from({ length: n }, (_, i) => ((data[i * 3] > 0.6 && data[i * 3 + 2] <= 0.3) || data[i * 3 + 1] > 0.85 ? 1 : 0));
  return { x: { data, rows: n, cols: 3 }, y };
}

test('sequential covering recovers planted rules: (x0 > 0.6 AND x2 <= 0.3) OR x1 > 0.85', () => {
  const train = plantedRules(3000, 1);
  const rules = learnRuleSet(train.x, train.y, { seed: 1 });
  assert.equal(rules.defaultLabel, 0, 'the commoner class is the default');
  assert.equal(rules.rules.length, 2, ruleLines(rules, ['x0', 'x1', 'x2'], ['0', '1']).join('\n'));
  const sorted = (cs: readonly Condition[]) => [...cs].sort((a, b) => a.feature - b.feature);
  const found = rules.rules.map((r) => sorted(r.conditions));
  const near = (c: Condition, feature: number, op: string, t: number) => c.feature === feature && c.op === op && Math.abs(c.threshold - t) < 0.02;
  const conj = found.find((cs) => cs.length === 2);
  const single = found.find((cs) => cs.length === 1);
  assert.ok(conj && near(conj[0], 0, '>', 0.6) && near(conj[1], 2, '<=', 0.3), JSON.stringify(found));
  assert.ok(single && near(single[0], 1, '>', 0.85), JSON.stringify(found));
  assert.ok(rules.rules.every((r) => r.label === 1));
  const held = plantedRules(2000, 2);
  const predicted = rules.predict(held.x);
  const accuracy = predicted.reduce((a, p, i) => a + (p === held.y[i] ? 1 : 0), 0) / held.x.rows;
  assert.ok(accuracy > 0.98, `held-out accuracy ${accuracy}`);
});

test('sequential covering on iris: few rules, near-perfect training fit, deterministic by seed', async () => {
  const { x, y } = whole(await loadIris());
  const a = learnRuleSet(x, y, { seed: 3 });
  const b = learnRuleSet(x, y, { seed: 3 });
  assert.deepEqual(a.rules, b.rules);
  const acc = a.predict(x).reduce((s, p, i) => s + (p === y[i] ? 1 : 0), 0) / x.rows;
  assert.ok(acc >= 0.93, `training accuracy ${acc}`);
  assert.ok(a.rules.length <= 8, `${a.rules.length} rules`);
  // setosa is separated by one condition on a petal measurement.
  const setosa = a.rules.find((r) => r.label === 0);
  assert.ok(setosa && setosa.conditions.length === 1 && setosa.conditions[0].feature >= 2, JSON.stringify(a.rules));
});
