/**
 * Neuron hazards and Shapley values on a hand-wired model with planted answers: a dead unit (prunable), an exact copy
 * of another unit (redundant, R² = 1), a unit that shifts both logits equally (prunable although active), and an
 * additive readout whose true-class logit gives closed-form Shapley values. Polysemanticity on a hand-made top-k table.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mulberry32 } from '../../../src/data/datasets/random.js';
import { ablateUnits } from '../../../src/methods/neurons/ablation.js';
import { mlp } from '../../../src/model/builders/index.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { frivolousUnits, polysemanticity, polysemanticUnits, reconstructionR2, topExamples } from '../../../src/methods/neurons/hazards.js';
import { neuronShapley } from '../../../src/methods/neurons/shapley.js';

// h = ReLU(x·W + b), 5 units over x ∈ [−1, 1]³: 0 dead (b = −1), 1 = ReLU(x0), 2 = copy of 1, 3 = ReLU(x1), 4 = ReLU(x2).
const W = [0, 1, 1, 0, 0, /**/ 0, 0, 0, 1, 0, /**/ 0, 0, 0, 0, 1]; // [3, 5]
const B = [-1, 0, 0, 0, 0];
// logits = h·V + c: unit 4 adds the same to both logits (no effect on the softmax).
const V = [3, -1, /**/ 2, -1, /**/ 1.5, -0.5, /**/ -2, 2, /**/ 0.5, 0.5]; // [5, 2]
const C = [0.25, -0.25];

async function handModel(): Promise<Model> {
  const net = new Net(0);
  const h = net.op('hidden', 'Add', [net.op('hidden', 'MatMul', ['x', net.param('hidden.weight', Tensor.float32(W, [3, 5]))]), net.param('hidden.bias', Tensor.float32(B, [5]))]);
  const r = net.op('hidden', 'Relu', [h]);
  const z = net.op('out', 'MatMul', [r, net.param('out.weight', Tensor.float32(V, [5, 2]))]);
  net.op('out', 'Add', [z, net.param('out.bias', Tensor.float32(C, [2]))], [], ['logits']);
  return Model.load(encodeModel(net.model({ name: 'hand', doc: 'hand-wired', input: { name: 'x', dtype: 'float32', shape: ['N', 3] }, output: { name: 'logits', shape: ['N', 2] } })));
}

/** n points uniform in [−1, 1]³, labelled by the model's own rule (margin 5·ReLU(x0) − 4·ReLU(x1) + 0.5 > 0: class 0), so any lost margin costs loss. */
function handData(n: number, seed = 1): { data: Dataset<'float32'>; x: Float32Array; y: Int32Array } {
  const rand = mulberry32(seed);
  const x = Float32Array.from({ length: 3 * n }, () => 2 * rand() - 1);
  const y = Int32Array.from({ length: n }, (_, i) => (5 * Math.max(0, x[3 * i]) - 4 * Math.max(0, x[3 * i + 1]) + 0.5 > 0 ? 0 : 1));
  const data = dataset({
    name: 'hand', size: n, inputShape: [3], inputDType: 'float32', numClasses: 2, labels: y,
    gather: (ix) => ({ x: Tensor.float32(Array.from(ix).flatMap((i) => [...x.subarray(3 * i, 3 * i + 3)]), [ix.length, 3]), y: Tensor.int64(Array.from(ix, (i) => y[i])) }),
  });
  return { data, x, y };
}

const hidden = (x: Float32Array, i: number) => Array.from({ length: 5 }, (_, u) => Math.max(0, B[u] + W[u] * x[3 * i] + W[5 + u] * x[3 * i + 1] + W[10 + u] * x[3 * i + 2]));

test('Shapley values of an additive value function are exact: φ_i = mean h_i·V[i, y], zero variance, efficient', async () => {
  const model = await handModel();
  const { data, x, y } = handData(300);
  const h = Array.from({ length: 300 }, (_, i) => hidden(x, i));
  const mu = [0, 1, 2, 3, 4].map((u) => h.reduce((a, r) => a + r[u], 0) / 300);
  for (const replace of ['zero', 'mean'] as const) {
    const s = await neuronShapley(model, data, { site: 'hidden.relu', metric: 'logit', permutations: 6, replace, seed: 3, batchSize: 128 });
    s.units.forEach((u, i) => {
      const expected = h.reduce((a, r, n) => a + (r[i] - (replace === 'mean' ? mu[i] : 0)) * V[2 * i + y[n]], 0) / 300;
      assert.ok(Math.abs(u.value - expected) < 1e-5, `${replace} φ${i}: ${u.value} vs ${expected}`);
      assert.ok(u.standardError < 1e-5, `${replace} unit ${i} has standard error ${u.standardError}, expected ~0`);
    });
    assert.equal(s.units[0].value, 0, 'the dead unit contributes nothing');
    const eff = s.checks.find((c) => c.name === 'efficiency')!;
    assert.ok(eff.passed && Math.abs(eff.value as number) < 1e-5, `efficiency delta ${eff.value}`);
    assert.equal(s.used, 6 * 5 + 2, 'no truncation at tolerance 0');
  }
  // Truncation: accuracy within tolerance ends permutations early, and efficiency then holds within the tolerance.
  const t = await neuronShapley(model, data, { site: 'hidden.relu', metric: 'accuracy', permutations: 20, tolerance: 0.05, seed: 1 });
  const eff = t.checks.find((c) => c.name === 'efficiency')!;
  assert.ok(eff.passed && Math.abs(eff.value as number) <= 0.05, `truncated efficiency delta ${eff.value}`);
  assert.ok(t.used < 20 * 5 + 2 && t.used <= t.evaluations, `truncation saved nothing: ${t.used} coalitions used`);
  const again = await neuronShapley(model, data, { site: 'hidden.relu', metric: 'accuracy', permutations: 20, tolerance: 0.05, seed: 1 });
  assert.deepEqual(again.units, t.units, 'the same seed gives the same estimate');
  await assert.rejects(neuronShapley(model, data, { site: 'hidden.relu', permutations: 1 }), /permutations must be an integer ≥ 2/);
  await assert.rejects(neuronShapley(model, data, { site: 'hidden.relu', tolerance: NaN }), /tolerance must be a finite number/);
  await assert.rejects(neuronShapley(model, data, { site: 'hiden.relu' }), /unknown site 'hiden.relu'; nearest: hidden.relu/);
});

test('frivolous units: the dead and the logit-shifting units are prunable, the copied pair is redundant (R² = 1)', async () => {
  const model = await handModel();
  const { data } = handData(400, 2);
  const f = await frivolousUnits(model, data, { sites: ['hidden.relu'], tolerance: 0.01 });
  const layer = f.layers[0];
  assert.deepEqual(layer.prunable, [0, 4]);
  assert.equal(layer.deltaLoss[0], 0, 'zeroing a dead unit changes nothing');
  assert.ok(Math.min(layer.deltaLoss[1], layer.deltaLoss[3]) > 0.05, `units 1 and 3 matter: ${layer.deltaLoss}`);
  assert.deepEqual(layer.redundant, [0, 1, 2], 'the constant unit and the copied pair');
  assert.ok(layer.r2[1] > 0.9999 && layer.r2[2] > 0.9999, `R² of the copies: ${layer.r2}`);
  assert.ok(layer.r2[3] < 0.2 && layer.r2[4] < 0.2, `independent units: ${layer.r2}`);
  assert.deepEqual(layer.counts, { units: 5, prunable: 2, redundant: 3, frivolous: 4 });
  const chance = f.checks.find((c) => c.name === 'hidden.relu: random-vector R²')!;
  assert.ok(chance.passed && (chance.value as number) < 0.1, `random vectors: ${chance.detail}`);
  assert.ok(f.checks.find((c) => c.name === 'hidden.relu: no-op ablation')!.passed);
  await assert.rejects(frivolousUnits(model, data, { sites: ['hidden.relu'], r2Threshold: NaN }), /r2Threshold must be in \(0, 1\]/);
  await assert.rejects(frivolousUnits(model, data, { sites: [] }), /no sites given/);
});

test('ridge R² against a brute-force least-squares reference', () => {
  // Three units and one random column over 6 examples: u2 = u0 + 2·u1 exactly; r unrelated.
  const rows = [[1, 0, 1, 0.3], [0, 1, 2, -1], [2, 1, 4, 0.5], [1, 3, 7, 2], [3, 0, 3, -0.2], [0, 0, 0.5, 1.1]];
  rows[5][2] = 0; // keep the exact relation on every row
  const d = 4;
  const mean = [0, 1, 2, 3].map((j) => rows.reduce((a, r) => a + r[j], 0) / rows.length);
  const s = new Float64Array(d * d);
  for (const r of rows) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) s[i * d + j] += (r[i] - mean[i]) * (r[j] - mean[j]);
  const { r2, random } = reconstructionR2(s, 3, 1, 1e-9);
  assert.ok(Math.abs(r2[2] - 1) < 1e-6, `exact linear relation: ${r2[2]}`);
  // Brute force: R² of the random column on the three units via the 3 × 3 normal equations (Cramer's rule).
  const a = [0, 1, 2].map((i) => [0, 1, 2].map((j) => s[i * d + j]));
  const b = [0, 1, 2].map((i) => s[i * d + 3]);
  const det3 = (m: number[][]) => m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  // The units are collinear (u2 = u0 + 2u1): regress on u0, u1 only, which span the same space.
  const det2 = a[0][0] * a[1][1] - a[0][1] * a[1][0];
  const beta = [(b[0] * a[1][1] - a[0][1] * b[1]) / det2, (a[0][0] * b[1] - b[0] * a[1][0]) / det2];
  const expected = (beta[0] * b[0] + beta[1] * b[1]) / s[3 * d + 3];
  assert.ok(Math.abs(det3(a)) < 1e-9, 'the reference relies on the planted collinearity');
  assert.ok(Math.abs(random[0] - expected) < 1e-6, `random column R² ${random[0]} vs ${expected}`);
});

test('polysemanticity on a hand-made top-k table', () => {
  // Labels of 12 examples over 4 classes.
  const labels = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3];
  const top = [
    [0, 1, 2, 3], // one class: entropy 0, not polysemantic
    [0, 1, 4, 5], // 2 classes at 50%: entropy ln2 / ln4 = 0.5, polysemantic
    [0, 4, 8, 10], // 4 classes at 25%: entropy 1, polysemantic
    [0, 1, 2, 4], // 75% / 25%: polysemantic at the 25% rule
  ];
  const r = polysemanticity(top, labels, 4);
  assert.deepEqual(r.units.map((u) => u.classes), [1, 2, 4, 2]);
  assert.deepEqual(r.units.map((u) => u.polysemantic), [false, true, true, true]);
  assert.deepEqual(r.polysemantic, [1, 2, 3]);
  const h = -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25)) / Math.log(4);
  [0, 0.5, 1, h].forEach((e, i) => assert.ok(Math.abs(r.units[i].entropy - e) < 1e-12, `entropy ${i}: ${r.units[i].entropy} vs ${e}`));
  assert.deepEqual(r.units.map((u) => [u.dominant, u.dominantShare]), [[0, 1], [0, 0.5], [0, 0.25], [0, 0.75]]);
  assert.deepEqual(polysemanticity(top, labels, 4, { minShare: 0.3 }).polysemantic, [1], 'a 30% rule drops the 25% splits');
  // Random sets of 4 of these 12 labels: never a single class more than rarely, so the baseline flags most of them.
  assert.ok(r.baseline.entropy > 0.5 && r.baseline.flagged > 0.5, `baseline ${JSON.stringify(r.baseline)}`);
  assert.throws(() => polysemanticity([[0, 12]], labels, 4), /unit 0 lists example 12, outside the 12 labels/);
  assert.throws(() => polysemanticity([[0, 1]], [0, NaN], 4), /example 1 has label NaN/);
  assert.throws(() => polysemanticity([[]], labels, 4), /unit 0 has no top examples/);
  assert.throws(() => polysemanticity(top, labels, 0), /numClasses must be a positive integer/);
});

test('topExamples against a sort of the activations; polysemanticUnits on the hand model', async () => {
  const model = await handModel();
  const { data, x } = handData(50, 3);
  const top = await topExamples(model, data, { site: 'hidden.relu', k: 5, batchSize: 16 });
  for (const u of [1, 3, 4]) {
    const order = Array.from({ length: 50 }, (_, i) => i).sort((a, b) => hidden(x, b)[u] - hidden(x, a)[u] || a - b);
    assert.deepEqual([...top[u]], order.slice(0, 5), `unit ${u}`);
  }
  assert.deepEqual([...top[0]], [0, 1, 2, 3, 4], 'a dead unit ties everywhere: lowest indices');
  const p = await polysemanticUnits(model, data, { site: 'hidden.relu', k: 5 });
  assert.equal(p.units.length, 5);
  await assert.rejects(topExamples(model, data, { site: 'hidden.relu', k: 0 }), /k must be a positive integer, got 0/);
  await assert.rejects(topExamples(model, data, { site: 'hidden.relu', k: 51 }), /k = 51 exceeds the dataset's 50 examples/);
});

test('MNIST MLP: prunable units ablated together cost less than random units; top examples are more class-pure than random', async () => {
  const [train, testSet] = await Promise.all([loadMnist('train'), loadMnist('test')]);
  const t = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [32], classes: 10, seed: 2 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(train.slice(0, 2000), { epochs: 2, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(t.exportModel()));
  await t.dispose();
  const data = testSet.slice(0, 1000);
  const f = await frivolousUnits(model, data, { sites: ['fc1.relu'], tolerance: 0.005, accuracyTolerance: 0.002 });
  const { prunable, counts } = f.layers[0];
  console.log(`MNIST fc1 (32 units): ${JSON.stringify(counts)}; ${f.checks.map((c) => c.detail).join('; ')}`);
  assert.ok(prunable.length >= 2 && prunable.length < 32, `prunable: ${prunable}`);
  assert.ok(f.checks.every((c) => c.passed !== false), 'no-op and random-vector checks pass');
  const together = await ablateUnits(model, data, { site: 'fc1.relu', groups: [prunable], randomGroups: 20, seed: 4 });
  const g = together.groups[0];
  console.log(`prunable units together: Δloss ${g.deltaLoss.toFixed(4)} vs random groups of ${prunable.length}: ${g.random!.deltaLoss.toFixed(4)}`);
  assert.ok(g.deltaLoss < g.random!.deltaLoss, `prunable together Δloss ${g.deltaLoss} vs random ${g.random!.deltaLoss}`);

  const p = await polysemanticUnits(model, data, { site: 'fc1.relu', k: 20 });
  const unitEntropy = p.checks[0].value as number;
  const randomEntropy = p.baseline.entropy;
  console.log(`polysemanticity: ${p.polysemantic.length} of 32 flagged; ${p.checks[0].detail}`);
  assert.ok(unitEntropy < randomEntropy - 0.1, `units' top examples (${unitEntropy}) should be purer than random sets (${randomEntropy})`);
});
