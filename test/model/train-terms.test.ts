/**
 * Loss terms in the trainer: a graph term and a host term that each equal SGD's weight decay in closed form; the
 * 'none' head with a reconstruction term read from an extra input, against the closed-form gradient step of a linear
 * model; the input gradient against finite differences; errors that name the problem.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { mlp } from '../../src/model/builders/index.js';
import { Net } from '../../src/model/builders/net.js';
import { Trainer, type HostTerm, type LossTerm } from '../../src/model/train/index.js';
import { attr } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { seeded } from '../helpers.js';

const reduceSum = [attr('keepdims', { int: 0 })];

function batch(n: number, d: number, classes: number, seed: number) {
  const r = seeded(seed);
  return {
    x: Tensor.float32(Array.from({ length: n * d }, () => 2 * r() - 1), [n, d]),
    y: Tensor.int64(Array.from({ length: n }, () => Math.floor(r() * classes)), [n]),
  };
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test('a graph L2 term and a host L2 term both equal SGD weight decay, step for step', async () => {
  const lambda = 0.05;
  const model = mlp({ inputs: 6, hidden: [8], classes: 3, seed: 3 });
  const weights = ['fc1.weight', 'fc2.weight'];
  // (λ/2)·Σ‖W‖² has gradient λW: what SGD's weightDecay adds to the gradient.
  const l2: LossTerm = {
    name: 'l2',
    weight: lambda / 2,
    build: (b) => b.op('Sum', weights.map((w) => b.op('ReduceSum', [b.op('Mul', [w, w])], reduceSum))),
  };
  const host: HostTerm = {
    name: 'l2',
    penalty(ws, grads) {
      let value = 0;
      for (const w of weights) {
        const p = ws.get(w)!;
        const g = grads.get(w)!;
        for (let i = 0; i < p.length; i++) {
          g[i] += lambda * p[i];
          value += (lambda / 2) * p[i] * p[i];
        }
      }
      return value;
    },
  };
  const names = ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'];
  const sgd = { kind: 'sgd', lr: 0.1 } as const;
  const withTerm = await Trainer.create(model, { optimizer: sgd, weights: names, terms: [l2] });
  const withHost = await Trainer.create(model, { optimizer: sgd, weights: names, hostTerms: [host] });
  const decayed = await Trainer.create(model, { optimizer: sgd, weights: names });
  // The reference: weight decay on the two weight matrices only, applied by hand as the same gradient.
  for (let s = 0; s < 5; s++) {
    const b = batch(16, 6, 3, s);
    const before = new Map([...decayed.weights].map(([k, v]) => [k, v.data.slice()]));
    const r1 = await withTerm.step(b);
    const r2 = await withHost.step(b);
    const r3 = await decayed.step(b);
    for (const w of weights) {
      const p = decayed.weights.get(w)!.data;
      const p0 = before.get(w)!;
      for (let i = 0; i < p.length; i++) p[i] -= 0.1 * lambda * p0[i];
    }
    assert.ok(Math.abs(r1.loss - r3.loss) < 1e-5, `cross-entropy ${r1.loss} vs ${r3.loss}`);
    assert.ok(Math.abs(r1.terms.l2 - r2.terms.l2) < 1e-5, `term ${r1.terms.l2} vs host ${r2.terms.l2}`);
    assert.ok(Math.abs(r1.objective - (r1.loss + r1.terms.l2)) < 1e-5);
    assert.ok(r1.terms.l2 > 0);
  }
  for (const w of names) {
    assert.ok(maxDiff(withTerm.weights.get(w)!.data, decayed.weights.get(w)!.data) < 1e-5, `${w}: graph term vs decay`);
    assert.ok(maxDiff(withHost.weights.get(w)!.data, decayed.weights.get(w)!.data) < 1e-5, `${w}: host term vs decay`);
  }
});

test("head 'none': a reconstruction term from an extra input takes the closed-form gradient step", async () => {
  const n = 8;
  const d = 4;
  const net = new Net(1);
  const out = net.dense('lin', 'x', d, d, { bias: false, output: 'y' });
  const model = net.model({ name: 'lin', doc: 'y = xW', input: { name: 'x', dtype: 'float32', shape: ['N', d] }, output: { name: 'y', shape: ['N', d] } });
  assert.equal(out, 'y');
  // mean((y − t)²) with the target t fed per batch.
  const recon: LossTerm = {
    name: 'mse',
    weight: 1,
    build: (b) => b.op('ReduceMean', [b.op('Pow', [b.op('Sub', [b.logits, b.feed('target', 'float32', ['N', d])]), b.constant(Tensor.float32([2], []))])], reduceSum),
  };
  const lr = 0.2;
  const trainer = await Trainer.create(model, { optimizer: { kind: 'sgd', lr }, head: 'none', terms: [recon] });
  const { x } = batch(n, d, 2, 7);
  const t = batch(n, d, 2, 8).x;
  const W = trainer.weights.get('lin.weight')!.data.slice(); // [in, out]
  const r = await trainer.step({ x, y: Tensor.int64(new Array(n).fill(0), [n]) }, { target: t });
  // Closed form: E = XW − T; loss = ΣE²/(n·d); ∇W = 2/(n·d) · XᵀE.
  const X = x.data;
  const T = t.data;
  const E = new Float64Array(n * d);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      let v = -T[i * d + j];
      for (let k = 0; k < d; k++) v += X[i * d + k] * W[k * d + j];
      E[i * d + j] = v;
      loss += (v * v) / (n * d);
    }
  }
  assert.ok(Math.abs(r.loss - loss) < 1e-5, `objective ${r.loss} vs ${loss}`);
  assert.ok(Math.abs(r.terms.mse - loss) < 1e-5);
  assert.equal(r.correct, 0);
  const after = trainer.weights.get('lin.weight')!.data;
  for (let k = 0; k < d; k++) {
    for (let j = 0; j < d; j++) {
      let g = 0;
      for (let i = 0; i < n; i++) g += X[i * d + k] * E[i * d + j];
      const want = W[k * d + j] - (lr * 2 * g) / (n * d);
      assert.ok(Math.abs(after[k * d + j] - want) < 1e-5, `W[${k},${j}] ${after[k * d + j]} vs ${want}`);
    }
  }
  await assert.rejects(trainer.step({ x, y: Tensor.int64(new Array(n).fill(0), [n]) }), /loss terms read 'target'/);
  await assert.rejects(trainer.evaluate({} as never), /head 'none'/);
  await trainer.dispose();
});

test('inputGradient matches central finite differences of the mean cross-entropy', async () => {
  const trainer = await Trainer.create(mlp({ inputs: 5, hidden: [7], classes: 3, seed: 2 }), { optimizer: { kind: 'sgd', lr: 0.1 } });
  const b = batch(4, 5, 3, 11);
  const { loss, grad } = await trainer.inputGradient(b);
  const lossAt = async (x: Float32Array) => (await trainer.inputGradient({ x: Tensor.float32(x, [4, 5]), y: b.y })).loss;
  assert.ok(Math.abs(loss - (await lossAt(b.x.data))) < 1e-7);
  const h = 1e-2;
  for (const i of [0, 3, 7, 12, 19]) {
    const up = b.x.data.slice();
    const down = b.x.data.slice();
    up[i] += h;
    down[i] -= h;
    const fd = ((await lossAt(up)) - (await lossAt(down))) / (2 * h);
    assert.ok(Math.abs(fd - grad.data[i]) < 2e-3, `x[${i}]: finite difference ${fd} vs ${grad.data[i]}`);
  }
  // The weights did not move.
  const w = trainer.weights.get('fc1.weight')!.data.slice();
  await trainer.inputGradient(b);
  assert.equal(maxDiff(w, trainer.weights.get('fc1.weight')!.data), 0);
  await trainer.dispose();
});

test('loss terms: bad definitions get errors that name them', async () => {
  const model = mlp({ inputs: 3, hidden: [4], classes: 2, seed: 1 });
  const b = batch(4, 3, 2, 1);
  const twice: LossTerm = { name: 'a', weight: 1, build: (t) => t.op('ReduceSum', [t.logits], reduceSum) };
  const dup = await Trainer.create(model, { optimizer: { kind: 'sgd', lr: 0.1 }, terms: [twice, twice] });
  await assert.rejects(dup.step(b), /two terms are named 'a'/);
  const bad = await Trainer.create(model, { optimizer: { kind: 'sgd', lr: 0.1 }, terms: [{ name: 's', weight: 1, build: (t) => t.op('ReduceSum', [t.site('relu9.relu')], reduceSum) }] });
  await assert.rejects(bad.step(b), /site 'relu9.relu'/);
  const none = await Trainer.create(model, { optimizer: { kind: 'sgd', lr: 0.1 }, head: 'none' });
  await assert.rejects(none.step(b), /at least one loss term/);
  const nan = await Trainer.create(model, { optimizer: { kind: 'sgd', lr: 0.1 }, terms: [{ name: 'log', weight: 1, build: (t) => t.op('ReduceSum', [t.op('Log', [t.op('Neg', [t.op('Abs', [t.logits])])])], reduceSum) }] });
  await assert.rejects(nan.step(b), /objective is NaN/);
});

test('an input-gradient penalty (double backpropagation) has the weight gradient of finite differences', async () => {
  // Ross et al.'s "right for the right reasons" term: Σ over a mask of (∂ label logit / ∂x)², mean over the batch.
  const mask = Tensor.float32([1, 1, 0, 0, 1], [1, 5]);
  const term: LossTerm = {
    name: 'rrr',
    weight: 0.5,
    build: (b) => {
      const classes = b.constant(Tensor.int64([3]));
      const onehot = b.op('OneHot', [b.labels!, classes, b.constant(Tensor.float32([0, 1]))], [attr('axis', { int: -1 })]);
      const [dx] = b.grad(b.logits, [b.input], onehot);
      return b.op('ReduceMean', [b.op('ReduceSum', [b.op('Mul', [b.op('Mul', [dx, dx]), b.constant(mask)]), b.constant(Tensor.int64([1]))], reduceSum)], reduceSum);
    },
  };
  const net = new Net(4);
  const h = net.op('act', 'Tanh', [net.linear('fc1', 'x', 5, 6)]);
  net.linear('fc2', h, 6, 3, 'logits');
  const model = net.model({ name: 'tanh', doc: 'tanh MLP', input: { name: 'x', dtype: 'float32', shape: ['N', 5] }, output: { name: 'logits', shape: ['N', 3] } });
  const lr = 1e-3;
  const trainer = await Trainer.create(model, { optimizer: { kind: 'sgd', lr }, terms: [term] });
  const b = batch(4, 5, 3, 5);
  const w = trainer.weights.get('fc1.weight')!.data;
  const start = new Map([...trainer.weights].map(([k, v]) => [k, v.data.slice()]));
  const reset = () => {
    for (const [k, v] of start) trainer.weights.get(k)!.data.set(v);
  };
  const r = await trainer.step(b);
  const grad = Float64Array.from(w, (v, i) => (start.get('fc1.weight')![i] - v) / lr); // SGD: Δ = −lr·∇
  assert.ok(r.terms.rrr > 0);
  const eps = 1e-3;
  for (const i of [0, 4, 9, 17, 28]) {
    reset();
    w[i] += eps;
    const up = (await trainer.step(b)).objective;
    reset();
    w[i] -= eps;
    const down = (await trainer.step(b)).objective;
    const fd = (up - down) / (2 * eps);
    assert.ok(Math.abs(fd - grad[i]) < 2e-3 + 2e-2 * Math.abs(fd), `fc1.weight[${i}]: finite difference ${fd} vs ${grad[i]}`);
  }
  await trainer.dispose();
});
