/**
 * Pruning curves against ground truth: which weights magnitude pruning removes (brute force), the accuracy at each
 * sparsity against a model rebuilt with those weights zeroed, the Taylor criterion against a closed form and finite
 * differences, and a real MNIST MLP whose magnitude curve must stay near dense to ≥ 50% and beat random at 90%.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mlp } from '../../../src/model/builders/index.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { defaultWeightNames, pruneWeights, pruningCurve, taylorScores, WEIGHT_METHODS, WeightEvaluator } from '../../../src/methods/weights/index.js';
import { seeded } from '../../helpers.js';

const IN = 4;
const OUT = 3;

/** logits = x·W + b (W [4, 3] with distinct magnitudes), or with `hidden`, sigmoid(x·W1)·W2. */
function linearModel(w: Float32Array, b: Float32Array): Promise<Model> {
  const net = new Net(0);
  const y = net.op('fc', 'MatMul', ['x', net.param('fc.weight', new Tensor('float32', w, [IN, OUT]))]);
  net.op('fc', 'Add', [y, net.param('fc.bias', new Tensor('float32', b, [OUT]))], [], ['logits']);
  return Model.load(encodeModel(net.model({ name: 'lin', doc: 'linear', input: { name: 'x', dtype: 'float32', shape: ['N', IN] }, output: { name: 'logits', shape: ['N', OUT] } })));
}

function sigmoidMlp(w1: Float32Array, w2: Float32Array): Promise<Model> {
  const net = new Net(0);
  const h = net.op('fc1', 'Sigmoid', [net.op('fc1', 'MatMul', ['x', net.param('fc1.weight', new Tensor('float32', w1, [IN, 5]))])]);
  net.op('fc2', 'MatMul', [h, net.param('fc2.weight', new Tensor('float32', w2, [5, OUT]))], [], ['logits']);
  return Model.load(encodeModel(net.model({ name: 'mlp', doc: 'sigmoid mlp', input: { name: 'x', dtype: 'float32', shape: ['N', IN] }, output: { name: 'logits', shape: ['N', OUT] } })));
}

/** n examples x ~ U(−1, 1)^4 with labels from a fixed random teacher (so the student is right only part of the time). */
function toyData(n: number, seed: number): Dataset<'float32'> {
  const r = seeded(seed);
  const x = Float32Array.from({ length: n * IN }, () => 2 * r() - 1);
  const labels = Int32Array.from({ length: n }, (_, i) => {
    const s = [x[i * IN] + x[i * IN + 1], x[i * IN + 2] - x[i * IN], x[i * IN + 3] - x[i * IN + 1]];
    return s.indexOf(Math.max(...s));
  });
  return dataset({
    name: 'toy',
    size: n,
    inputShape: [IN],
    inputDType: 'float32',
    numClasses: OUT,
    labels,
    gather: (ix) => ({
      x: new Tensor('float32', Float32Array.from({ length: ix.length * IN }, (_, k) => x[ix[Math.floor(k / IN)] * IN + (k % IN)]), [ix.length, IN]),
      y: Tensor.int64(Array.from(ix, (i) => labels[i])),
    }),
  });
}

// Distinct magnitudes, mixed signs: |w| = 0.1, 0.2, … 1.2 in a scrambled order.
const W = Float32Array.from([7, -3, 12, -1, 9, 5, -11, 2, -8, 4, -6, 10], (v) => v / 10);
const B = Float32Array.from([0.05, -0.02, 0.01]);

test('magnitude pruning removes exactly the s smallest |w|, and each point equals a model rebuilt with them zeroed', async () => {
  const model = await linearModel(W, B);
  assert.deepEqual(defaultWeightNames(model), ['fc.weight'], 'biases are not pruned by default');
  const data = toyData(400, 1);
  const sparsities = [0, 0.25, 0.5, 0.75, 1];
  const r = await pruningCurve(model, data, { sparsities, randomSeed: null });
  const byMagnitude = Array.from(W.keys()).sort((a, b) => Math.abs(W[a]) - Math.abs(W[b]));
  for (const [i, s] of sparsities.entries()) {
    const k = Math.round(s * W.length);
    const pruned = pruneWeights(new Map([['fc.weight', W]]), new Map([['fc.weight', Float64Array.from(W, Math.abs)]]), s, 'global').weights.get('fc.weight')!;
    const zeroed = Array.from(pruned.keys()).filter((j) => pruned[j] === 0).sort((a, b) => a - b);
    assert.deepEqual(zeroed, byMagnitude.slice(0, k).sort((a, b) => a - b), `sparsity ${s}: the ${k} smallest |w|`);
    assert.equal(r.curve[i].pruned, k);
    // Direct evaluation: the same model built with those weights zeroed, run as an ordinary model.
    const direct = await linearModel(pruned, B);
    const { outputs } = await direct.run({ x: data.gather(Array.from({ length: data.size }, (_, j) => j)).x });
    const logits = outputs.logits.data as Float32Array;
    let correct = 0;
    let loss = 0;
    for (let n = 0; n < data.size; n++) {
      const row = Array.from(logits.subarray(n * OUT, n * OUT + OUT));
      const m = Math.max(...row);
      loss += m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[data.labels![n]];
      if (row.indexOf(m) === data.labels![n]) correct++;
    }
    assert.equal(r.curve[i].accuracy, correct / data.size, `accuracy at sparsity ${s}`);
    assert.ok(Math.abs(r.curve[i].loss - loss / data.size) < 1e-9, `loss at sparsity ${s}`);
    await direct.dispose();
  }
  assert.equal(r.curve[0].accuracy, r.dense.accuracy, 'sparsity 0 reproduces the dense accuracy exactly');
  assert.ok(r.checks.find((c) => c.name === 'dense reproduction')?.passed);
  assert.ok(r.dense.accuracy > 0.4 && r.dense.accuracy < 0.9, `above chance (1/3) yet imperfect (${r.dense.accuracy}) so the curve can move`);
  await model.dispose();
});

test('layer scope prunes the same fraction of every weight; global ranks across them', async () => {
  const r = seeded(3);
  const w1 = Float32Array.from({ length: IN * 5 }, () => 2 * r() - 1);
  const w2 = Float32Array.from({ length: 5 * OUT }, () => 4 * r() - 2); // larger: global pruning takes fewer of these
  const weights = new Map([['a', w1], ['b', w2]]);
  const scores = new Map([...weights].map(([k, v]) => [k, Float64Array.from(v, Math.abs)]));
  const zeros = (m: Map<string, Float32Array>, k: string) => m.get(k)!.filter((v) => v === 0).length;
  const layer = pruneWeights(weights, scores, 0.4, 'layer').weights;
  assert.equal(zeros(layer, 'a'), Math.round(0.4 * 20));
  assert.equal(zeros(layer, 'b'), Math.round(0.4 * 15));
  const global = pruneWeights(weights, scores, 0.4, 'global').weights;
  assert.equal(zeros(global, 'a') + zeros(global, 'b'), Math.round(0.4 * 35));
  const threshold = Math.max(...[...global].flatMap(([k, v]) => Array.from(v.keys()).filter((i) => v[i] === 0).map((i) => Math.abs(weights.get(k)![i]))));
  const keptMin = Math.min(...[...global].flatMap(([, v]) => Array.from(v).filter((x) => x !== 0).map(Math.abs)));
  assert.ok(threshold <= keptMin, 'every pruned |w| is at most every kept |w|');
  assert.ok(zeros(global, 'b') < zeros(layer, 'b'), 'the larger layer loses fewer weights under global ranking');
});

test('Taylor saliency |w·∂L/∂w| matches the closed form of softmax regression and finite differences of an MLP', async () => {
  const model = await linearModel(W, B);
  const data = toyData(300, 2);
  const scores = (await taylorScores(model, data, { weights: ['fc.weight'], samples: 200, batchSize: 64 })).get('fc.weight')!;
  // ∂L/∂W = xᵀ (softmax(xW + b) − onehot(y)) / n over the first 200 examples.
  const { x } = data.gather(Array.from({ length: 200 }, (_, i) => i));
  const g = new Float64Array(IN * OUT);
  for (let n = 0; n < 200; n++) {
    const z = Array.from({ length: OUT }, (_, c) => B[c] + Array.from({ length: IN }, (_, i) => x.data[n * IN + i] * W[i * OUT + c]).reduce((a, v) => a + v, 0));
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, v) => a + v, 0);
    for (let c = 0; c < OUT; c++) for (let i = 0; i < IN; i++) g[i * OUT + c] += (x.data[n * IN + i] * (e[c] / s - (data.labels![n] === c ? 1 : 0))) / 200;
  }
  for (let j = 0; j < W.length; j++) assert.ok(Math.abs(scores[j] - Math.abs(W[j] * g[j])) < 1e-5, `weight ${j}: ${scores[j]} vs ${Math.abs(W[j] * g[j])}`);
  await model.dispose();

  const r = seeded(4);
  const w1 = Float32Array.from({ length: IN * 5 }, () => 2 * r() - 1);
  const w2 = Float32Array.from({ length: 5 * OUT }, () => 2 * r() - 1);
  const net = await sigmoidMlp(w1, w2);
  const taylor = await taylorScores(net, data, { samples: 300, batchSize: 128 });
  const evaluator = await WeightEvaluator.create(net, ['fc1.weight', 'fc2.weight'], 'test');
  const shapes = new Map([['fc1.weight', [IN, 5]], ['fc2.weight', [5, OUT]]]);
  const h = 1e-2;
  for (const [name, j] of [['fc1.weight', 3], ['fc1.weight', 17], ['fc2.weight', 0], ['fc2.weight', 11]] as const) {
    const at = (d: number) => {
      const m = new Map([['fc1.weight', w1.slice()], ['fc2.weight', w2.slice()]]);
      m.get(name)![j] += d;
      return evaluator.evaluate(data, m, shapes, 300).then((e) => e.loss);
    };
    const fd = ((await at(h)) - (await at(-h))) / (2 * h);
    const w = name === 'fc1.weight' ? w1[j] : w2[j];
    assert.ok(Math.abs(taylor.get(name)![j] - Math.abs(w * fd)) < 2e-4, `${name}[${j}]: Taylor ${taylor.get(name)![j]} vs finite differences ${Math.abs(w * fd)}`);
  }
  await evaluator.dispose();
  await net.dispose();
});

test('on MNIST, magnitude pruning stays within 1 point of dense to ≥ 50% sparsity and beats random pruning at 90%', async () => {
  const [train, testSet] = await Promise.all([loadMnist('train'), loadMnist('test')]);
  const t = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [64], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(train.slice(0, 3000), { epochs: 3, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(t.exportModel()));
  await t.dispose();
  const held = testSet.slice(0, 1000);
  const sparsities = [0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95];
  const magnitude = await pruningCurve(model, held, { sparsities, criterion: 'magnitude', scope: 'global', randomSeed: 1 });
  const taylor = await WEIGHT_METHODS['pruning-curve'].run(model, held, { sparsities, criterion: 'gradient', scope: 'layer', randomSeed: null, samples: 500 });
  const fmt = (c: readonly { sparsity: number; accuracy: number }[]) => c.map((p) => `${p.sparsity}:${p.accuracy.toFixed(3)}`).join(' ');
  console.log(`dense ${magnitude.dense.accuracy}; magnitude ${fmt(magnitude.curve)}; random ${fmt(magnitude.random!)}; taylor/layer ${fmt(taylor.curve)}; frivolous ${magnitude.frivolous} (taylor ${taylor.frivolous})`);
  assert.ok(magnitude.dense.accuracy > 0.85, `the trained MLP is accurate (${magnitude.dense.accuracy})`);
  assert.ok(magnitude.checks.find((c) => c.name === 'dense reproduction')?.passed, 'fed weights reproduce the loaded model');
  assert.equal(magnitude.curve[0].accuracy, magnitude.dense.accuracy);
  assert.ok(magnitude.frivolous >= 0.5, `frivolous ${magnitude.frivolous}`);
  const at90 = sparsities.indexOf(0.9);
  assert.ok(magnitude.curve[at90].accuracy > magnitude.random![at90].accuracy + 0.1, `magnitude ${magnitude.curve[at90].accuracy} vs random ${magnitude.random![at90].accuracy} at 90%`);
  assert.ok(taylor.curve[at90].accuracy > magnitude.random![at90].accuracy + 0.1, 'the Taylor criterion beats random at 90% too');
  assert.equal(magnitude.weights.map((w) => w.name).join(), 'fc1.weight,fc2.weight');
  await model.dispose();
});

test('bad input: unknown weight, sparsity outside [0, 1], bad criterion, empty data', async () => {
  const model = await linearModel(W, B);
  const data = toyData(20, 5);
  await assert.rejects(pruningCurve(model, data, { weights: ['fc.weigth'] }), /unknown .*weight 'fc.weigth'.*fc\.weight/);
  await assert.rejects(pruningCurve(model, data, { sparsities: [0, 1.5] }), /sparsity must be a number in \[0, 1\], got 1.5/);
  await assert.rejects(pruningCurve(model, data, { sparsities: [-0.1] }), /got -0.1/);
  await assert.rejects(pruningCurve(model, data, { sparsities: [Number.NaN] }), /got NaN/);
  await assert.rejects(pruningCurve(model, data, { criterion: 'size' as never }), /criterion must be/);
  await assert.rejects(pruningCurve(model, data, { weights: ['fc.weight', 'fc.weight'] }), /listed twice/);
  await assert.rejects(pruningCurve(model, data.slice(0, 0)), /dataset is empty/);
  await model.dispose();
});
