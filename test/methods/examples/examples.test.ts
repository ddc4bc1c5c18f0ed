/**
 * Explanations by example on an MLP trained here on MNIST (1000 images, 10% of them with a wrong label):
 * streamed nearest neighbours against a brute-force search, TracIn against autodiff gradients and its self-influence
 * finding the mislabelled images (Pruthi et al. 2020), representer points reproducing the logits (Yeh et al. 2018).
 */
import '../../../src/index.js';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mlp } from '../../../src/model/builders/index.js';
import type { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import {
  EXAMPLE_EXPLANATION_METHODS,
  fitWithCheckpoints,
  influenceFunctions,
  lastLayer,
  nearestNeighbours,
  representerPoints,
  tracin,
  type TracInCheckpoint,
} from '../../../src/methods/examples/index.js';

const N = 1000;
let train: Dataset<'float32'>;
let test_: Dataset<'float32'>;
let flipped: Set<number>;
let checkpoints: TracInCheckpoint[];
let model: Model;

/** The dataset with the labels of `flip` changed to another class. */
function withFlippedLabels(ds: Dataset<'float32'>, flip: Set<number>): Dataset<'float32'> {
  const labels = Int32Array.from(ds.labels!, (l, i) => (flip.has(i) ? (l + 1 + (i % 9)) % 10 : l));
  return dataset({
    name: `${ds.name}[flipped]`,
    size: ds.size,
    inputShape: ds.inputShape,
    inputDType: 'float32',
    numClasses: 10,
    labels,
    gather: (ix) => ({ x: ds.gather(ix).x, y: Tensor.int64(Array.from(ix, (i) => labels[i]), [ix.length]) }),
  });
}

before(async () => {
  flipped = new Set(Array.from({ length: N / 10 }, (_, k) => 10 * k + 3));
  train = withFlippedLabels((await loadMnist('train')).slice(0, N), flipped);
  test_ = (await loadMnist('test')).slice(0, 100);
  const trainer = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [32], classes: 10, seed: 2 }), { optimizer: { kind: 'sgd', lr: 0.1 } });
  checkpoints = await fitWithCheckpoints(trainer, train, { epochs: 3, batchSize: 32, seed: 1 });
  model = checkpoints[checkpoints.length - 1].model;
  await trainer.dispose();
});
after(async () => {
  await Promise.all(checkpoints.map((c) => c.model.dispose()));
});

test('streamed nearest neighbours equal a brute-force search, for both metrics', async () => {
  const site = lastLayer(model).input;
  const pool = train.slice(0, 150);
  const queries = test_.gather([0, 1, 2]).x;
  const all = (await model.run({ x: pool.gather(Array.from({ length: 150 }, (_, i) => i)).x }, { capture: [site] })).captures[site];
  const q = (await model.run({ x: queries }, { capture: [site] })).captures[site];
  const D = all.size / 150;
  const row = (t: Tensor, i: number) => Array.from((t.data as Float32Array).subarray(i * D, (i + 1) * D));
  for (const metric of ['cosine', 'euclidean'] as const) {
    const r = await nearestNeighbours(model, site, pool, queries, { k: 6, metric, batchSize: 7 });
    for (let i = 0; i < 3; i++) {
      const qi = row(q, i);
      const scored = Array.from({ length: 150 }, (_, j) => {
        const f = row(all, j);
        const dotp = f.reduce((s, v, u) => s + v * qi[u], 0);
        const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
        const score = metric === 'cosine' ? dotp / (norm(f) * norm(qi)) : Math.sqrt(f.reduce((s, v, u) => s + (v - qi[u]) ** 2, 0));
        return { index: j, score };
      }).sort((a, b) => (metric === 'cosine' ? b.score - a.score : a.score - b.score) || a.index - b.index);
      assert.deepEqual(r.neighbours[i].map((e) => e.index), scored.slice(0, 6).map((e) => e.index), `${metric}, query ${i}`);
      r.neighbours[i].forEach((e, k) => assert.ok(Math.abs(e.score - scored[k].score) < 1e-6));
    }
  }
  const big = await nearestNeighbours(model, site, train, test_.gather(Array.from({ length: 20 }, (_, i) => i)).x, { k: 5 });
  const check = big.checks.find((c) => c.name === 'neighbours share the predicted label')!;
  assert.equal(check.passed, true, check.detail);
  assert.ok((check.value as number) > 0.6, `agreement ${check.value as number}`);
});

test('nearest neighbours refuse k 0, unknown sites, mismatched and NaN queries', async () => {
  const q = test_.gather([0]).x;
  await assert.rejects(nearestNeighbours(model, 'fc1.relu', train, q, { k: 0 }), /k must be a positive integer, got 0/);
  await assert.rejects(nearestNeighbours(model, 'fc1.rel', train, q, { k: 3 }), /fc1\.rel/);
  await assert.rejects(nearestNeighbours(model, 'fc1.relu', train, Tensor.float32(new Float32Array(784), [1, 784]), { k: 3 }), /do not match the training examples/);
  await assert.rejects(nearestNeighbours(model, 'fc1.relu', train, Tensor.float32(new Float32Array(784).fill(NaN), [1, 1, 28, 28]), { k: 3 }), /NaN/);
  await assert.rejects(nearestNeighbours(model, 'fc1.relu', train, q, { k: 3, metric: 'manhattan' as 'cosine' }), /unknown metric 'manhattan'/);
});

test('TracIn equals Σ lr·∇L·∇L from autodiff, and its self-influence finds the mislabelled images', async () => {
  const tests = test_.slice(0, 2);
  const r = await tracin(checkpoints, train, tests);
  for (const c of r.checks) assert.ok(c.passed !== false, `${c.name}: ${JSON.stringify(c.value)}`);
  assert.equal(r.checkpoints, 3);
  // Reference: the last layer's gradients of the cross-entropy from model.grad (seed softmax − onehot), dotted.
  const layer = lastLayer(model);
  const gradOf = async (m: Model, ds: Dataset<'float32'>, i: number) => {
    const { x, y } = ds.gather([i]);
    const logits = (await m.run({ x })).outputs.logits.data as Float32Array;
    const e = logits.map((v) => Math.exp(v - Math.max(...logits)));
    const s = e.reduce((a, b) => a + b, 0);
    const seed = Tensor.float32(Array.from(e, (v, k) => v / s - (Number(y.data[0]) === k ? 1 : 0)), [1, 10]);
    const g = await m.grad({ x }, { of: 'logits', wrt: [layer.weight, layer.bias!], seed });
    return [...g.grads[layer.weight].data as Float32Array, ...g.grads[layer.bias!].data as Float32Array];
  };
  for (const i of [0, 3, 7]) {
    let want = 0;
    for (const c of checkpoints) {
      const [gi, gt] = [await gradOf(c.model, train, i), await gradOf(c.model, tests, 1)];
      want += c.lr * gi.reduce((s, v, k) => s + v * gt[k], 0);
    }
    assert.ok(Math.abs(r.scores[1][i] - want) <= 1e-4 * Math.max(1, Math.abs(want)), `example ${i}: ${r.scores[1][i]} vs ${want}`);
  }
  // Pruthi et al. §4: ranking by self-influence surfaces mislabelled examples far above their 10% base rate.
  const top = Array.from(r.selfInfluence, (s, i) => [s, i]).sort((a, b) => b[0] - a[0]).slice(0, N / 10);
  const found = top.filter(([, i]) => flipped.has(i)).length / top.length;
  console.log(`TracIn: ${(100 * found).toFixed(0)}% of the top-10% self-influence are mislabelled (base rate 10%)`);
  assert.ok(found > 0.5, `only ${found} of the top self-influence are mislabelled`);
  // Proponents of a test example mostly share its label.
  const label = tests.labels![0];
  const props = r.helpful(0, 10).filter((e) => train.labels![e.index] === label).length;
  assert.ok(props >= 7, `${props}/10 proponents share the test label ${label}`);
  await assert.rejects(tracin([], train, tests), /at least one checkpoint/);
  await assert.rejects(tracin([{ model, lr: 0 }], train, tests), /learning rate 0/);
});

test('representer points: Θ = Σ α_i f̃_iᵀ at the fitted optimum, so the values decompose the test logits', async () => {
  const tests = test_.slice(0, 5);
  const lambda = 1e-3;
  const r = await representerPoints(model, train, tests, { l2: lambda });
  for (const c of r.checks) assert.ok(c.passed !== false, `${c.name}: ${JSON.stringify(c.value)} (${c.detail})`);
  const fidelity = r.checks.find((c) => c.name === 'fitted layer agrees with the model')!.value as number;
  console.log(`representer: the refitted layer agrees with the model on ${(100 * fidelity).toFixed(1)}% of training examples`);
  assert.ok(fidelity > 0.75, `refitted layer agrees on ${fidelity}`);
  // Independently: features captured here, Θ rebuilt from α.
  const layer = lastLayer(model);
  const feats = (await model.run({ x: train.gather(Array.from({ length: N }, (_, i) => i)).x }, { capture: [layer.input] })).captures[layer.input].data as Float32Array;
  const D = layer.features;
  const rebuilt = new Float64Array(10 * (D + 1));
  for (let i = 0; i < N; i++) for (let k = 0; k < 10; k++) {
    for (let j = 0; j < D; j++) rebuilt[k * (D + 1) + j] += r.alpha[i * 10 + k] * feats[i * D + j];
    rebuilt[k * (D + 1) + D] += r.alpha[i * 10 + k];
  }
  const err = Math.max(...rebuilt.map((v, k) => Math.abs(v - r.theta[k])));
  assert.ok(err < 1e-5, `Σ α f̃ differs from Θ by ${err}`);
  for (let t = 0; t < 5; t++) {
    const sum = r.values[t].reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - r.logits[t][r.classes[t]]) < 1e-6 * Math.max(1, Math.abs(sum)), `test ${t}: Σ values ${sum} vs logit ${r.logits[t][r.classes[t]]}`);
  }
  // Excitatory points of the predicted class mostly carry that label (the paper's Fig. 2).
  const same = r.helpful(0, 10).filter((e) => train.labels![e.index] === r.classes[0]).length;
  assert.ok(same >= 8, `${same}/10 excitatory points share the class ${r.classes[0]}`);
  await assert.rejects(representerPoints(model, train, tests, { l2: 0 }), /l2 must be a positive number/);
});

test('retraining the whole MLP without the most helpful examples raises the test loss more than without random ones', async () => {
  // The network is not convex, so this is the check in its plain form: same init, optimiser and shuffle seed.
  const retrainLoss = async (removed: readonly number[], t: number) => {
    const drop = new Set(removed);
    const keep = Array.from({ length: N }, (_, i) => i).filter((i) => !drop.has(i));
    const trainer = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [32], classes: 10, seed: 2 }), { optimizer: { kind: 'sgd', lr: 0.1 } });
    await trainer.fit(train.subset(keep), { epochs: 3, batchSize: 32, seed: 1 });
    const loss = (await trainer.evaluate(test_.subset([t]))).loss;
    await trainer.dispose();
    return loss;
  };
  const points = [0, 1, 2];
  const r = await influenceFunctions(model, train, test_.subset(points), { damping: 0.01 });
  const k = 40;
  let helpful = 0;
  let random = 0;
  for (let t = 0; t < points.length; t++) {
    const base = await retrainLoss([], points[t]);
    helpful += (await retrainLoss(r.helpful(t, k).map((e) => e.index), points[t])) - base;
    random += (await retrainLoss(Array.from({ length: k }, (_, i) => (i * 97 + 31 * t) % N), points[t])) - base;
  }
  console.log(`full retraining, mean Δ test loss removing ${k}: helpful ${(helpful / points.length).toFixed(4)}, random ${(random / points.length).toFixed(4)}`);
  assert.ok(helpful > 0 && helpful > 3 * Math.abs(random), `helpful ${helpful} vs random ${random}`);
});

test('the registry places every method as a passive, local explanation by example', () => {
  assert.deepEqual(Object.keys(EXAMPLE_EXPLANATION_METHODS), ['nearest-neighbours', 'influence-functions', 'tracin', 'representer-points']);
  for (const [name, entry] of Object.entries(EXAMPLE_EXPLANATION_METHODS)) {
    assert.deepEqual(entry.info.taxonomy, { zhang: { engagement: 'passive', format: 'examples', scope: 'local' } }, name);
    assert.equal(typeof entry.run, 'function');
  }
  assert.equal((EXAMPLE_EXPLANATION_METHODS['influence-functions'].info as { stochastic?: boolean }).stochastic, true);
});
