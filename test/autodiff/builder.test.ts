import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import '../../src/index.js';
import { buildGradGraph } from '../../src/autodiff/grad.js';
import { defaultRules } from '../../src/autodiff/rules/index.js';
import type { RuleTable } from '../../src/autodiff/types.js';
import { Model } from '../../src/model/model.js';
import { Graph } from '../../src/onnx/graph.js';
import { tensorFromProto } from '../../src/onnx/tensor-proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { torchFixture } from '../helpers.js';

test('a replaced rule set changes the backward pass: Relu as identity makes the MLP linear, with a closed-form gradient', async () => {
  const fx = torchFixture('mlp');
  const model = await Model.load(fx.path);
  const linearized: RuleTable = { ...defaultRules, Relu: (a) => [a.grads[0]] };
  const seed = Tensor.float32(Array.from({ length: 40 }, (_, i) => Math.cos(i)), [4, 10]);
  const { grads } = await model.grad({ x: fx.input }, { wrt: ['x'], seed, rules: linearized, rulesName: 'relu-identity' });
  // d/dx sum(seed ⊙ (W3 W2 W1 x + …)) = seed W3 W2 W1, row by row.
  const w = (n: string) => tensorFromProto(model.graph.initializers.get(n)!);
  const [w1, w2, w3] = ['fc1.weight', 'fc2.weight', 'fc3.weight'].map(w);
  /** Row vector v [rows] times matrix m [rows, cols]. */
  const times = (v: number[], m: Tensor) => {
    const cols = m.shape[1];
    return Array.from({ length: cols }, (_, j) => v.reduce((s, x, i) => s + x * m.at(i * cols + j), 0));
  };
  for (let r = 0; r < 4; r++) {
    const expected = times(times(times(seed.toArray().slice(r * 10, r * 10 + 10), w3), w2), w1);
    expected.forEach((e, j) => assert.ok(Math.abs(grads.x.at(r * 784 + j) - e) < 1e-5, `row ${r} pixel ${j}`));
  }
  const exact = await model.grad({ x: fx.input }, { wrt: ['x'], seed });
  assert.ok(exact.grads.x.toArray().some((v, i) => Math.abs(v - grads.x.at(i)) > 1e-4), 'the default Relu rule gives another gradient');
});

test('an op without a rule on the path is named before anything is built; ops off the path need none', () => {
  const g = Graph.decode(readFileSync(torchFixture('cnn').path));
  const info = (v: string) => ({ dtype: 'float32' as const, shape: g.values.get(v)?.shape });
  const { Conv: _conv, ...noConv } = defaultRules;
  assert.throws(
    () => buildGradGraph(g, { of: 'logits', wrt: ['x'], rules: noConv, info }),
    /grad: no VJP rule for Conv \(first: node '\/c1\/Conv'\), on the path from x to logits/,
  );
  // From the pooled value on, no Conv is on the path.
  const ok = buildGradGraph(g, { of: 'logits', wrt: ['/pool/MaxPool_output_0'], rules: noConv, info: (v) => ({ dtype: 'float32', shape: v === 'logits' ? ['N', 10] : g.values.get(v)?.shape }) });
  assert.ok(ok.grads['/pool/MaxPool_output_0']);
  assert.throws(() => buildGradGraph(g, { of: 'logits', wrt: ['nope'], rules: defaultRules, info }), /no value 'nope'/);
});

test('gradients of integer values are refused with the reason', async () => {
  const model = await Model.load(torchFixture('gpt').path);
  const tokens = Tensor.int64([1, 2, 3], [1, 3]);
  await assert.rejects(model.grad({ tokens }, { wrt: ['tokens'] }), /'tokens' is int64; gradients exist only for float values/);
  await assert.rejects(model.grad({ tokens }, { wrt: ['tok_emb.wieght'] }), /unknown site or weight 'tok_emb\.wieght'.*tok_emb\.weight/);
});

test('gradients over a batch split to the memory budget: input gradients joined, weight gradients summed', async () => {
  const model = await Model.load(torchFixture('cnn').path);
  const rows = 9;
  const x = Tensor.float32(Array.from({ length: rows * 784 }, (_, i) => Math.sin(i * 0.37)), [rows, 1, 28, 28]);
  const seed = Tensor.float32(Array.from({ length: rows * 10 }, (_, i) => Math.cos(i)), [rows, 10]);
  const wrt = ['x', 'relu1.relu', 'c1.weight', 'fc.bias'];
  const whole = await model.grad({ x }, { wrt, seed });
  const seen: number[] = [];
  const split = await model.grad({ x }, { wrt, seed, maxBatchBytes: 4e6, onProgress: (d) => seen.push(d) });
  assert.ok(seen.length > 2, `split into ${seen.length} calls`);
  for (const w of wrt) {
    const a = whole.grads[w];
    const b = split.grads[w];
    assert.deepEqual(b.shape, a.shape, w);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < a.size; i++) {
      worst = Math.max(worst, Math.abs(a.at(i) - b.at(i)));
      scale = Math.max(scale, Math.abs(a.at(i)));
    }
    assert.ok(worst <= 1e-5 * scale + 1e-7, `${w}: split differs by ${worst} (max ${scale})`);
  }
  // fc.bias's gradient is the seed summed over rows: a closed form.
  for (let k = 0; k < 10; k++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += seed.at(r * 10 + k);
    assert.ok(Math.abs(split.grads['fc.bias'].at(k) - s) < 1e-5);
  }
});
