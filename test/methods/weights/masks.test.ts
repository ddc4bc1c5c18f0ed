/**
 * Weight masks against a planted ground truth: a network of two disconnected sub-networks, class 0's logit computed
 * only by block A and class 1's only by block B. A mask learnt for class 0 must keep A and drop B (and so lose
 * class 1); a mask for both classes must keep both. Also: the masked graph with every gate on is the model itself,
 * the same seed gives the same mask, and bad input names the problem.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { dataset, type Dataset } from '../../../src/data/datasets/dataset.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { mlp } from '../../../src/model/builders/index.js';
import { Net } from '../../../src/model/builders/net.js';
import { Trainer } from '../../../src/model/train/index.js';
import { Model } from '../../../src/model/model.js';
import { encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';
import { learnWeightMask, maskedGraph, WEIGHT_METHODS, type WeightMask } from '../../../src/methods/weights/index.js';
import { seeded } from '../../helpers.js';

const IN = 4;
const HID = 8;

/** Block-diagonal weights: x[0:2] → h[0:4] → logit 0 (block A); x[2:4] → h[4:8] → logit 1 (block B); zeros elsewhere. */
function blockWeights(): { w1: Float32Array; w2: Float32Array; a: { w1: Set<number>; w2: Set<number> }; b: { w1: Set<number>; w2: Set<number> } } {
  const r = seeded(11);
  const w1 = new Float32Array(IN * HID);
  const w2 = new Float32Array(HID * 2);
  const a = { w1: new Set<number>(), w2: new Set<number>() };
  const b = { w1: new Set<number>(), w2: new Set<number>() };
  for (let i = 0; i < IN; i++) {
    for (let j = 0; j < HID; j++) {
      if (i < 2 !== j < 4) continue;
      w1[i * HID + j] = (r() < 0.5 ? -1 : 1) * (0.5 + r());
      (i < 2 ? a : b).w1.add(i * HID + j);
    }
  }
  for (let j = 0; j < HID; j++) {
    const c = j < 4 ? 0 : 1;
    w2[j * 2 + c] = 0.5 + r();
    (c === 0 ? a : b).w2.add(j * 2 + c);
  }
  return { w1, w2, a, b };
}

function blockModel(w1: Float32Array, w2: Float32Array): Promise<Model> {
  const net = new Net(0);
  const h = net.op('fc1', 'Relu', [net.op('fc1', 'MatMul', ['x', net.param('fc1.weight', new Tensor('float32', w1, [IN, HID]))])]);
  net.op('fc2', 'MatMul', [h, net.param('fc2.weight', new Tensor('float32', w2, [HID, 2]))], [], ['logits']);
  return Model.load(encodeModel(net.model({ name: 'blocks', doc: 'two disconnected sub-networks', input: { name: 'x', dtype: 'float32', shape: ['N', IN] }, output: { name: 'logits', shape: ['N', 2] } })));
}

/** n examples x ~ U(−1, 1)^4 labelled by the model itself (so the original is exactly right). */
async function labelled(model: Model, n: number): Promise<Dataset<'float32'>> {
  const r = seeded(12);
  const x = new Tensor('float32', Float32Array.from({ length: n * IN }, () => 2 * r() - 1), [n, IN]);
  const logits = (await model.run({ x })).outputs.logits.data as Float32Array;
  const labels = Int32Array.from({ length: n }, (_, i) => (logits[2 * i + 1] > logits[2 * i] ? 1 : 0));
  return dataset({
    name: 'blocks',
    size: n,
    inputShape: [IN],
    inputDType: 'float32',
    numClasses: 2,
    labels,
    gather: (ix) => ({
      x: new Tensor('float32', Float32Array.from({ length: ix.length * IN }, (_, k) => x.data[ix[Math.floor(k / IN)] * IN + (k % IN)]), [ix.length, IN]),
      y: Tensor.int64(Array.from(ix, (i) => labels[i])),
    }),
  });
}

function keptIn(r: WeightMask, block: { w1: Set<number>; w2: Set<number> }): number {
  const m1 = r.masks.get('fc1.weight')!;
  const m2 = r.masks.get('fc2.weight')!;
  const kept = [...block.w1].filter((i) => m1[i]).length + [...block.w2].filter((i) => m2[i]).length;
  return kept / (block.w1.size + block.w2.size);
}

const setup = (async () => {
  const { w1, w2, a, b } = blockWeights();
  const model = await blockModel(w1, w2);
  return { model, data: await labelled(model, 512), a, b };
})();

for (const penalty of ['l0', 'l1'] as const) {
  test(`a ${penalty} mask for class 0 keeps sub-network A and drops B, so it loses class 1`, async () => {
    const { model, data, a, b } = await setup;
    const counts = [0, 1].map((c) => Array.from(data.labels!).filter((y) => y === c).length);
    assert.ok(Math.min(...counts) > 100, `both classes present (${counts})`);
    const r = await learnWeightMask(model, data, { task: [0], penalty, lambda: 1, steps: 300, lr: 0.05, seed: 1, batchSize: 64 });
    const keptA = keptIn(r, a);
    const keptB = keptIn(r, b);
    console.log(`${penalty}: kept A ${keptA.toFixed(3)}, B ${keptB.toFixed(3)}, sparsity ${r.sparsity.toFixed(3)}; task ${JSON.stringify(r.task)}; off-task ${JSON.stringify(r.offTask)}; ${r.ms.toFixed(0)} ms`);
    assert.ok(keptA >= 0.75, `A kept ${keptA}`);
    // B's path to the output is cut: every B weight of fc2 dropped. L0's stochastic gates open now and then during
    // training, so a few negative fc1 weights of B (which lower logit 1 while its gate is open) may survive, dead.
    const m2 = r.masks.get('fc2.weight')!;
    assert.ok([...b.w2].every((i) => m2[i] === 0), 'no B unit reaches logit 1');
    assert.ok(keptB <= 0.34, `B kept ${keptB}`);
    assert.equal(r.task.original.accuracy, 1, 'labels come from the model itself');
    assert.ok(r.task.masked.accuracy >= 0.98, `task accuracy kept (${r.task.masked.accuracy})`);
    assert.ok(r.offTask && r.offTask.masked.accuracy < 0.1, `class 1 is lost without B (${r.offTask?.masked.accuracy})`);
    assert.equal(r.offTask.original.accuracy, 1);
    assert.ok(r.checks.find((c) => c.name === 'task accuracy kept')?.passed);
    assert.ok(r.checks.find((c) => c.name === 'beats a random mask')?.passed);
    // Predicting class 0 everywhere is right on every task example, so a random mask is judged by its task loss.
    assert.ok(r.task.random.loss > r.task.masked.loss + 0.1, `a random mask of the same sparsity has a higher task loss (${r.task.random.loss} vs ${r.task.masked.loss})`);
    // Off-block weights are zero: the task loss never needs them, so the penalty removes them all.
    const kept = r.kept.reduce((s, k) => s + k.kept, 0);
    const inBlocks = Math.round(keptA * (a.w1.size + a.w2.size) + keptB * (b.w1.size + b.w2.size));
    assert.equal(kept, inBlocks, 'no off-block (zero) weight is kept');
    assert.ok(r.history[r.history.length - 1].expectedKept < r.history[0].expectedKept, 'the expected mask size shrinks');
  });
}

test('a mask for both classes keeps both sub-networks (no specialisation to find)', async () => {
  const { model, data, a, b } = await setup;
  const r = await WEIGHT_METHODS['weight-mask'].run(model, data, { task: (y: number) => y === 0 || y === 1, lambda: 0.2, steps: 300, lr: 0.05, seed: 1 });
  console.log(`both classes: kept A ${keptIn(r, a).toFixed(3)}, B ${keptIn(r, b).toFixed(3)}; task ${JSON.stringify(r.task)}`);
  assert.ok(keptIn(r, a) >= 0.75 && keptIn(r, b) >= 0.75, `A ${keptIn(r, a)}, B ${keptIn(r, b)}`);
  assert.equal(r.offTask, null);
  // The objective is the cross-entropy, not accuracy: dropping one A weight lowers the loss and flips a few
  // examples near the boundary, so the loss is what must be kept.
  assert.ok(r.task.masked.loss <= r.task.original.loss + 0.01, `loss ${r.task.masked.loss} vs ${r.task.original.loss}`);
  assert.ok(r.task.masked.accuracy >= 0.9, `accuracy ${r.task.masked.accuracy}`);
});

test('the same seed gives the same mask; the masked graph with every gate on is the model', async () => {
  const { model, data } = await setup;
  const opts = { task: [0], penalty: 'l0' as const, lambda: 1, steps: 40, lr: 0.05, seed: 3 };
  const [r1, r2] = [await learnWeightMask(model, data, opts), await learnWeightMask(model, data, opts)];
  for (const [w, l] of r1.logits) assert.deepEqual(Array.from(l), Array.from(r2.logits.get(w)!), `logits of ${w}`);
  const r3 = await learnWeightMask(model, data, { ...opts, seed: 4 });
  assert.notDeepEqual(Array.from(r3.logits.get('fc1.weight')!), Array.from(r1.logits.get('fc1.weight')!), 'another seed, another noise');

  const shapes = new Map([['fc1.weight', [IN, HID]], ['fc2.weight', [HID, 2]]]);
  const x = data.gather([0, 1, 2, 3, 4, 5, 6, 7]).x;
  const plain = (await model.run({ x })).outputs.logits.data as Float32Array;
  for (const penalty of ['l0', 'l1'] as const) {
    const { graph, inputs } = maskedGraph(model.graph, shapes, penalty);
    const masked = await Model.load(graph.encode());
    // L0: sigmoid(10)·1.2 − 0.1 > 1 clips to exactly 1; L1: sigmoid(40) rounds to 1 in float32.
    const on = penalty === 'l0' ? 10 : 40;
    const feeds: Record<string, Tensor> = { x };
    for (const [w, s] of shapes) feeds[inputs.get(w)!] = new Tensor('float32', new Float32Array(s[0] * s[1]).fill(on), s);
    assert.deepEqual(Array.from((await masked.run(feeds)).outputs.logits.data as Float32Array), Array.from(plain), `${penalty} gates on`);
    // Every gate of fc2 off (L0 clips to exactly 0): logits are zero.
    feeds[inputs.get('fc2.weight')!] = new Tensor('float32', new Float32Array(HID * 2).fill(-40), [HID, 2]);
    assert.ok(Array.from((await masked.run(feeds)).outputs.logits.data as Float32Array).every((v) => Math.abs(v) < 1e-12), `${penalty} gates off`);
    await masked.dispose();
  }
});

test('on MNIST, a mask for digits 0–4 drops most weights, keeps their accuracy and beats a random mask of its sparsity', async () => {
  const [train, testSet] = await Promise.all([loadMnist('train'), loadMnist('test')]);
  const t = await Trainer.create(mlp({ inputs: [1, 28, 28], hidden: [32], classes: 10, seed: 2 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(train.slice(0, 3000), { epochs: 2, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(t.exportModel()));
  await t.dispose();
  const held = testSet.slice(0, 2000);
  const r = await learnWeightMask(model, train.slice(3000, 5000), { task: [0, 1, 2, 3, 4], penalty: 'l0', lambda: 1, steps: 300, lr: 0.1, seed: 1, batchSize: 64, evaluate: held });
  console.log(`mnist: sparsity ${r.sparsity.toFixed(3)}; kept ${JSON.stringify(r.kept)}; task ${JSON.stringify(r.task)}; off-task ${JSON.stringify(r.offTask)}; ${r.ms.toFixed(0)} ms`);
  assert.equal(r.task.examples + r.offTask!.examples, held.size, 'measured on the held-out digits');
  assert.ok(r.sparsity >= 0.5, `sparsity ${r.sparsity}`);
  assert.ok(r.task.masked.accuracy >= r.task.original.accuracy - 0.02, `task accuracy ${r.task.masked.accuracy} vs ${r.task.original.accuracy}`);
  assert.ok(r.task.random.loss > r.task.masked.loss + 0.1, `random mask task loss ${r.task.random.loss} vs ${r.task.masked.loss}`);
  assert.ok(r.offTask!.original.accuracy - r.offTask!.masked.accuracy > 0.3, 'the subnetwork is specialised: digits 5–9 are lost');
  await model.dispose();
});

test('bad input: empty task, a task without examples, unknown weight, negative lambda', async () => {
  const { model, data } = await setup;
  await assert.rejects(learnWeightMask(model, data, { task: [] }), /task lists no classes/);
  await assert.rejects(learnWeightMask(model, data, { task: [7] }), /task selects no example/);
  await assert.rejects(learnWeightMask(model, data, { task: () => false }), /task selects no example/);
  await assert.rejects(learnWeightMask(model, data, { task: [0], weights: ['fc3.weight'] }), /unknown .*weight 'fc3.weight'/);
  await assert.rejects(learnWeightMask(model, data, { task: [0], lambda: -1 }), /lambda must be/);
  await assert.rejects(learnWeightMask(model, data, { task: [0], steps: 0 }), /steps must be/);
});
