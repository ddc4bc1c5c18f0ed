/**
 * Tree regularisation (Wu et al. 2018): the APL of hand-checkable trees, the surrogate's gradient (what the host term
 * adds to the weight gradients) against finite differences, and two trainings against the unregularised twin — the
 * paper's 2-D parabola and breast cancer — where the trees fitted to the regularised network must be shorter at a
 * stated accuracy cost.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { split } from '../../../src/data/datasets/split.js';
import { loadBreastCancer } from '../../../src/data/datasets/tabular.js';
import { mlp } from '../../../src/model/builders/index.js';
import { fitTree } from '../../../src/methods/rules/tree.js';
import {
  averagePathLength, inputMatrix, parabolaDataset, TREE_REGULARIZATION_METHODS, trainTreeRegularized, treeCost, treeRegularizer, TreeSurrogate,
  type TreeRegularizationResult,
} from '../../../src/methods/active/tree-regularization.js';
import { seeded } from '../../helpers.js';

const summary = (r: TreeRegularizationResult) =>
  `APL ${r.tree.regularized.apl.toFixed(2)} (${r.tree.regularized.nodes} nodes) vs twin ${r.tree.twin.apl.toFixed(2)} (${r.tree.twin.nodes} nodes); accuracy ${(100 * r.regularized.accuracy).toFixed(1)}% vs ${(100 * r.twin.accuracy).toFixed(1)}%; surrogate R² ${r.surrogateFits.at(-1)?.toFixed(2)}`;

test('APL counts the splits on each example’s path; the parabola toy labels by its boundary', () => {
  // x ≤ 0.5 → class 0 (one split); above, x ≤ 0.75 → 1, else 0 (two splits). Rows: 4 at depth 1, 2 + 2 at depth 2.
  const x = { data: [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9], rows: 8, cols: 1 };
  const y = [0, 0, 0, 0, 1, 1, 0, 0];
  const tree = fitTree(x, y);
  assert.equal(averagePathLength(tree, x), (4 * 1 + 4 * 2) / 8);
  const fit = treeCost(x, y, 2, 1);
  assert.equal(fit.nodes, 5);
  assert.equal(fit.fidelity, 1);
  assert.equal(treeCost(x, y, 2, 4).apl, 1, 'leaves of ≥ 4 examples: one split');
  const toy = parabolaDataset({ size: 300, seed: 5 });
  const m = inputMatrix(toy);
  for (let i = 0; i < 300; i++) assert.equal(toy.labels![i], m.data[2 * i + 1] > 2 * m.data[2 * i] ** 2 - 0.5 ? 1 : 0);
  const ones = Array.from(toy.labels!).filter((v) => v === 1).length;
  assert.ok(ones > 90 && ones < 210, `${ones} of 300 above the parabola`);
});

test('the surrogate fits a known map from weights to APL, and its gradient is the finite difference of its prediction', () => {
  const p = 12;
  const r = seeded(3);
  const thetas = Array.from({ length: 80 }, () => Float64Array.from({ length: p }, () => 2 * r() - 1));
  const target = (t: Float64Array) => 3 + t[0] - 2 * t[5] + 0.5 * t[7] * t[7];
  const s = new TreeSurrogate(p, 16, 1);
  const r2 = s.fit(thetas, thetas.map(target), 400);
  assert.ok(r2 > 0.95, `R² ${r2}`);
  const at = Float64Array.from({ length: p }, () => 0.3 * (2 * r() - 1));
  const grad = new Float64Array(p);
  s.predict(at, { out: grad, weight: 0.7 });
  for (let i = 0; i < p; i++) {
    const up = at.slice();
    const down = at.slice();
    up[i] += 1e-5;
    down[i] -= 1e-5;
    const fd = (0.7 * (s.predict(up) - s.predict(down))) / 2e-5;
    assert.ok(Math.abs(fd - grad[i]) < 1e-6 + 1e-4 * Math.abs(fd), `∂/∂θ[${i}]: ${grad[i]} vs finite difference ${fd}`);
  }
  // It learned the map's slope where it was sampled: ∂/∂θ0 ≈ 1, ∂/∂θ5 ≈ −2 (times the weight 0.7).
  assert.ok(Math.abs(grad[0] / 0.7 - 1) < 0.3 && Math.abs(grad[5] / 0.7 + 2) < 0.5, `learned slopes ${grad[0] / 0.7}, ${grad[5] / 0.7}`);
});

test('parabola toy: the tree-regularised network’s trees are shorter than its twin’s, at ≤ 2 points of accuracy', async (t) => {
  const train = parabolaDataset({ size: 500, seed: 1 });
  const testSet = parabolaDataset({ size: 1000, seed: 2 });
  const model = mlp({ inputs: 2, hidden: [16], classes: 2, seed: 1 });
  const r = await trainTreeRegularized(model, {
    train, test: testSet, epochs: 30, batchSize: 25, seed: 1, optimizer: { kind: 'adam', lr: 1e-2 },
    strength: 0.3, every: 40, perturbations: 4, iterations: 30, keep: 100,
  });
  t.diagnostic(summary(r));
  assert.ok(r.tree.regularized.apl < 0.9 * r.tree.twin.apl, summary(r));
  assert.ok(r.twin.accuracy - r.regularized.accuracy <= 0.02, summary(r));
  assert.ok(r.tree.regularized.fidelity > 0.95 && r.tree.twin.fidelity > 0.95, `the trees simulate their networks: ${summary(r)}`);
  // 600 steps, a refit every 40 (the first before step 1), each recording the current and 4 perturbed weight vectors.
  assert.equal(r.surrogateFits.length, 15);
  assert.equal(r.records.length, 15 * 5);
  assert.equal(r.records.filter((x) => !x.perturbed).length, 15);
  assert.ok(r.checks.find((c) => c.name === 'average path length')!.passed);
});

test('breast cancer: shorter trees at the same accuracy (within 1 point)', async (t) => {
  const [train, test] = split(await loadBreastCancer(), [0.7, 0.3], { seed: 1, stratify: true, standardize: true });
  const model = mlp({ inputs: 30, hidden: [16], classes: 2, seed: 1 });
  const r = await trainTreeRegularized(model, {
    train, test, epochs: 20, batchSize: 16, seed: 1, optimizer: { kind: 'adam', lr: 1e-2 },
    strength: 0.1, every: 20, perturbations: 4, iterations: 30, keep: 100, minSamplesLeaf: 3,
  });
  t.diagnostic(summary(r));
  assert.ok(r.tree.regularized.apl < r.tree.twin.apl && r.tree.regularized.nodes <= r.tree.twin.nodes, summary(r));
  assert.ok(r.twin.accuracy - r.regularized.accuracy <= 0.01, summary(r));
});

test('tree regularisation: bad options are named', () => {
  const model = mlp({ inputs: 2, hidden: [4], classes: 2, seed: 1 });
  const data = parabolaDataset({ size: 20, seed: 1 });
  assert.throws(() => treeRegularizer(model, { strength: 0, data }), /strength must be a positive number, got 0/);
  assert.throws(() => treeRegularizer(model, { strength: 1, data, every: 0 }), /every must be a positive integer, got 0/);
  assert.throws(() => treeRegularizer(model, { strength: 1, data, minSamplesLeaf: 15 }), /20 examples cannot fill two leaves of 15/);
  assert.throws(() => parabolaDataset({ size: 10, seed: 1, flip: 0.5 }), /flip must be in \[0, 0.5\)/);
  assert.equal(TREE_REGULARIZATION_METHODS['tree-regularization'].info.taxonomy.zhang.format, 'rules');
});
