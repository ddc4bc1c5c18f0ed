/**
 * CDRP (Wang et al. 2018): critical routing paths on a hand-wired convolution whose gates have a closed-form optimum
 * (only one channel can carry each class; the others must close), and on a small MNIST CNN trained here, where the
 * critical channels keep the prediction far more often than as many random ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../../src/index.js';
import { loadMnist } from '../../../src/data/datasets/images.js';
import { cdrp } from '../../../src/methods/rules/cdrp.js';
import { cnn } from '../../../src/model/builders/index.js';
import { Net } from '../../../src/model/builders/net.js';
import { Model } from '../../../src/model/model.js';
import { Trainer } from '../../../src/model/train/index.js';
import { attr, encodeModel } from '../../../src/onnx/proto.js';
import { Tensor } from '../../../src/runtime/tensor.js';

/**
 * x [N, 1, 2, 2] → 1×1 conv with 4 channels of weights (1, 1, 1, −1) → ReLU (`c1.relu`) → Flatten → Gemm to 2 classes.
 * Channel 0 (positive inputs) votes class 0, channel 3 (negative inputs) votes class 1; channel 1 adds the same to
 * both classes (no effect on the softmax), channel 2 reaches no class.
 */
async function handWired(): Promise<Model> {
  const net = new Net(0);
  const w = net.param('c1.weight', Tensor.float32([1, 1, 1, -1], [4, 1, 1, 1]));
  const b = net.param('c1.bias', Tensor.float32([0, 0, 0, 0], [4]));
  let h = net.op('c1', 'Conv', ['x', w, b], [attr('kernel_shape', { ints: [1, 1] })]);
  h = net.op('c1', 'Relu', [h]);
  h = net.op('flatten', 'Flatten', [h], [attr('axis', { int: 1 })]); // [N, 16], channel-major
  const row = (perChannel: number[]) => perChannel.flatMap((v) => [v, v, v, v]);
  const W = net.param('fc.weight', Tensor.float32([...row([1, 1, 0, -1]), ...row([-1, 1, 0, 1])], [2, 16]));
  net.op('fc', 'Gemm', [h, W, net.param('fc.bias', Tensor.float32([0, 0], [2]))], [attr('transB', { int: 1 })], ['logits']);
  return Model.load(encodeModel(net.model({ name: 'gated', doc: 'hand-wired', input: { name: 'x', dtype: 'float32', shape: ['N', 1, 2, 2] }, output: { name: 'logits', shape: ['N', 2] } })));
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

test('hand-wired conv: the carrying channel settles at the closed-form optimum, the others close to exactly 0', async () => {
  const model = await handWired();
  // Pixel sums s = 2, 1 (class 0, through channel 0) and −2 (class 1, through channel 3).
  const x = Tensor.float32([0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, -0.5, -0.5, -0.5, -0.5], [3, 1, 2, 2]);
  const gamma = 0.05;
  const r = await cdrp(model, x, { sites: ['c1.relu'], gamma, steps: 300 });
  assert.deepEqual(Array.from(r.predictions), [0, 0, 1]);
  const g = r.gates['c1.relu'];
  assert.deepEqual(g.shape, [3, 4]);
  // The margin is m = 2λs, so ∂CE(p, q)/∂λ = 2s(q − p) for the carrying gate; it settles where that equals −γ:
  // q = p − γ/(2s) with p = σ(2s), λ* = logit(q)/(2s).
  const optimum = (s: number) => {
    const q = sigmoid(2 * s) - gamma / (2 * s);
    return Math.log(q / (1 - q)) / (2 * s);
  };
  const carrier = [0, 0, 3];
  [2, 1, 2].forEach((sum, i) => {
    const row = g.toArray().slice(i * 4, i * 4 + 4);
    assert.ok(Math.abs(row[carrier[i]] - optimum(sum)) < 2e-3, `example ${i}: λ = ${row[carrier[i]]}, closed form ${optimum(sum)}`);
    row.forEach((v, c) => c !== carrier[i] && assert.equal(v, 0, `example ${i}: channel ${c} closes`));
  });
  assert.deepEqual(Array.from(r.kept), [1, 1, 1]);
  assert.equal(r.sparsity, 0.75);
  assert.deepEqual(r.agreement, { gated: 1, critical: 1, random: r.agreement.random });
  // One random channel of four: the class-0 examples keep class 0 on the tie at zero logits (argmax takes the first),
  // the class-1 example only when channel 3 is drawn.
  assert.ok(r.agreement.random >= 2 / 3 && r.agreement.random < 1, `random channels: ${r.agreement.random}`);
  // Paths of the two class-0 inputs are identical up to scale; the class-1 path is orthogonal to them.
  assert.ok(Math.abs(r.similarity.sameClass - 1) < 1e-6 && r.similarity.differentClass === 0, JSON.stringify(r.similarity));
  for (const c of r.checks) if (c.passed !== undefined) assert.ok(c.passed, `${c.name}: ${c.detail}`);
});

test('MNIST CNN: critical channels keep the prediction far more often than as many random ones; paths cluster by class', async () => {
  const data = await loadMnist('test');
  const t = await Trainer.create(cnn({ input: [1, 28, 28], channels: [8, 16], classes: 10, seed: 1 }), { optimizer: { kind: 'adam', lr: 3e-3 } });
  await t.fit(data.slice(0, 1000), { epochs: 2, batchSize: 32, seed: 1 });
  const model = await Model.load(encodeModel(t.exportModel()));
  await t.dispose();
  const x = data.slice(2000, 2024).gather(Array.from({ length: 24 }, (_, i) => i)).x;
  const r = await cdrp(model, x, { sites: ['c1.relu', 'c2.relu'], gamma: 0.1, steps: 100, seed: 1 });
  assert.deepEqual(r.sites, [{ name: 'c1.relu', axis: 1, channels: 8 }, { name: 'c2.relu', axis: 1, channels: 16 }]);
  assert.deepEqual(r.gates['c2.relu'].shape, [24, 16]);
  assert.ok(r.gates['c1.relu'].toArray().every((v) => v >= 0), 'gates are projected onto λ ≥ 0');
  assert.ok(r.sparsity > 0.5, `most gates close: sparsity ${r.sparsity}`);
  assert.ok(r.agreement.critical >= 0.9, `critical channels alone keep ${r.agreement.critical} of the predictions`);
  assert.ok(r.agreement.random <= r.agreement.critical - 0.3, `as many random channels keep ${r.agreement.random}, the critical ones ${r.agreement.critical}`);
  assert.ok(r.similarity.sameClass > r.similarity.differentClass + 0.05, `paths of one class ${r.similarity.sameClass} vs across classes ${r.similarity.differentClass}`);
  assert.ok(r.history[r.history.length - 1].l1 < r.history[0].l1, 'the L1 norm of the gates falls');
  for (const c of r.checks) if (c.passed !== undefined) assert.ok(c.passed, `${c.name}: ${c.detail}`);
});

test('bad input: unknown site, NaN input, negative γ, no sites, a repeated site, zero steps', async () => {
  const model = await handWired();
  const x = Tensor.float32([0.5, 0.5, 0.5, 0.5], [1, 1, 2, 2]);
  await assert.rejects(cdrp(model, x, { sites: ['c1.rleu'] }), /c1\.rleu.*c1\.relu/s);
  await assert.rejects(cdrp(model, Tensor.float32([0.5, NaN, 0.5, 0.5], [1, 1, 2, 2]), { sites: ['c1.relu'] }), /cdrp: x holds NaN at flat index 1/);
  await assert.rejects(cdrp(model, x, { sites: ['c1.relu'], gamma: -1 }), /cdrp: gamma must be a finite number ≥ 0, got -1/);
  await assert.rejects(cdrp(model, x, { sites: [] }), /cdrp: name at least one site/);
  await assert.rejects(cdrp(model, x, { sites: ['c1.relu', 'c1.relu'] }), /listed twice/);
  await assert.rejects(cdrp(model, x, { sites: ['c1.relu'], steps: 0 }), /cdrp: steps must be an integer ≥ 1, got 0/);
});
