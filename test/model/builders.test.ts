import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { cnn, gpt, mlp } from '../../src/model/builders/index.js';
import { Model } from '../../src/model/model.js';
import { Graph } from '../../src/onnx/graph.js';
import { encodeModel, type ModelProto } from '../../src/onnx/proto.js';
import { tensorFromProto } from '../../src/onnx/tensor-proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { seeded } from '../helpers.js';

const weightsOf = (m: ModelProto) => new Map(new Graph(m).proto.initializer.map((t) => [t.name, tensorFromProto(t)]));

function randomInput(shape: number[], seed: number): Tensor<'float32'> {
  const r = seeded(seed);
  return Tensor.float32(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r()), shape);
}

test('mlp: PyTorch names (fc1.weight, fc1.relu) and the closed-form forward relu(x W1ᵀ + b1) W2ᵀ + b2', async () => {
  const proto = mlp({ inputs: 5, hidden: [4], classes: 3, seed: 7 });
  const model = await Model.load(encodeModel(proto));
  assert.deepEqual(model.sites.map((s) => s.name), ['x', 'fc1.gemm', 'fc1.relu', 'fc2.gemm']);
  assert.deepEqual([...weightsOf(proto).keys()], ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
  const w = weightsOf(proto);
  const x = randomInput([2, 5], 1);
  const { outputs } = await model.run({ x });
  const [w1, b1, w2, b2] = ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'].map((n) => w.get(n)!);
  for (let r = 0; r < 2; r++) {
    const h = Array.from({ length: 4 }, (_, j) => Math.max(0, b1.at(j) + Array.from({ length: 5 }, (_, i) => x.at(r * 5 + i) * w1.at(j * 5 + i)).reduce((a, b) => a + b)));
    for (let k = 0; k < 3; k++) {
      const y = b2.at(k) + h.reduce((s, v, j) => s + v * w2.at(k * 4 + j), 0);
      assert.ok(Math.abs(outputs.logits.at(r * 3 + k) - y) < 1e-5, `row ${r} class ${k}`);
    }
  }
  // Image-shaped inputs are flattened first.
  const img = await Model.load(encodeModel(mlp({ inputs: [1, 4, 4], hidden: [3], classes: 2, seed: 1 })));
  assert.deepEqual(img.sites.map((s) => s.name), ['x', 'flatten.flatten', 'fc1.gemm', 'fc1.relu', 'fc2.gemm']);
  assert.deepEqual(img.inputs[0].shape, ['N', 1, 4, 4]);
});

test("cnn: sites c1.conv … fc.gemm with their shapes; weights drawn from PyTorch's kaiming-uniform bound 1/√fan_in", async () => {
  const proto = cnn({ input: [1, 28, 28], channels: [16, 32], classes: 10, seed: 1 });
  const model = await Model.load(encodeModel(proto));
  const shapes = Object.fromEntries(model.sites.map((s) => [s.name, s.shape]));
  assert.deepEqual(shapes['c1.conv'], ['N', 16, 28, 28]);
  assert.deepEqual(shapes['c1.maxpool'], ['N', 16, 14, 14]);
  assert.deepEqual(shapes['c2.relu'], ['N', 32, 14, 14]);
  assert.deepEqual(shapes['flatten.flatten'], ['N', 32 * 7 * 7]);
  assert.deepEqual(shapes['fc.gemm'], ['N', 10]);
  const fanIn = { 'c1.weight': 9, 'c1.bias': 9, 'c2.weight': 16 * 9, 'c2.bias': 16 * 9, 'fc.weight': 1568, 'fc.bias': 1568 } as Record<string, number>;
  for (const [name, t] of weightsOf(proto)) {
    const bound = 1 / Math.sqrt(fanIn[name]);
    const v = t.toArray();
    assert.ok(v.every((x) => Math.abs(x) <= bound), `${name} within ±${bound}`);
    if (v.length > 1000) {
      // U(−b, b): mean 0, variance b²/3, and the extremes reached.
      const mean = v.reduce((a, b) => a + b) / v.length;
      const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
      assert.ok(Math.abs(mean) < 0.05 * bound, `${name} mean ${mean}`);
      assert.ok(Math.abs(variance / (bound * bound / 3) - 1) < 0.05, `${name} variance ${variance}`);
      assert.ok(Math.max(...v) > 0.99 * bound && Math.min(...v) < -0.99 * bound, name);
    }
  }
  const hidden = await Model.load(encodeModel(cnn({ input: [3, 8, 8], channels: [4], hidden: [6], classes: 2, kernel: 5, seed: 1 })));
  assert.deepEqual(hidden.sites.map((s) => s.name).slice(-4), ['flatten.flatten', 'fc1.gemm', 'fc1.relu', 'fc2.gemm']);
  assert.deepEqual(hidden.sites.find((s) => s.name === 'flatten.flatten')?.shape, ['N', 4 * 4 * 4]);
});

test('builders are seeded: the same seed gives the same bytes, another seed other weights', () => {
  const specs = [
    (seed: number) => mlp({ inputs: 10, hidden: [8], classes: 3, seed }),
    (seed: number) => cnn({ input: [1, 8, 8], channels: [4], classes: 3, seed }),
    (seed: number) => gpt({ vocab: 11, context: 8, dModel: 8, heads: 2, layers: 1, seed }),
  ];
  for (const make of specs) {
    assert.deepEqual(encodeModel(make(3)), encodeModel(make(3)));
    const a = weightsOf(make(3));
    const b = weightsOf(make(4));
    const w = [...a.keys()][0];
    assert.notDeepEqual(a.get(w)!.toArray(), b.get(w)!.toArray(), w);
  }
});

test('gpt: logits [N, T, vocab] for any T ≤ context, causal (later tokens never change earlier logits), PyTorch-default init', async () => {
  const spec = { vocab: 13, context: 8, dModel: 16, heads: 4, layers: 2, seed: 5 };
  const proto = gpt(spec);
  const model = await Model.load(encodeModel(proto));
  for (const name of ['tok_emb.gather', 'blocks.0.ln1.layernormalization', 'blocks.0.attn.softmax', 'blocks.1.mlp.act.erf', 'ln_f.layernormalization', 'head.matmul']) {
    assert.doesNotThrow(() => model.site(name), name);
  }
  const tokens = Tensor.int64([1, 5, 7, 2, 0, 12, 3], [1, 7]);
  const changed = Tensor.int64([1, 5, 7, 2, 9, 9, 9], [1, 7]);
  const a = (await model.run({ tokens })).outputs.logits;
  const b = (await model.run({ tokens: changed })).outputs.logits;
  assert.deepEqual(a.shape, [1, 7, 13]);
  for (let i = 0; i < 4 * 13; i++) assert.equal(a.at(i), b.at(i), `position ${Math.floor(i / 13)} sees only its past`);
  assert.ok(Array.from({ length: 13 }, (_, k) => a.at(4 * 13 + k) !== b.at(4 * 13 + k)).some(Boolean), 'position 4 sees its own token');
  const w = weightsOf(proto);
  const emb = w.get('tok_emb.weight')!.toArray();
  const std = Math.sqrt(emb.reduce((s, v) => s + v * v, 0) / emb.length);
  assert.ok(std > 0.75 && std < 1.25, `nn.Embedding draws N(0, 1): std ${std}`);
  assert.ok(w.get('blocks.1.ln2.weight')!.toArray().every((v) => v === 1));
  assert.ok(w.get('ln_f.bias')!.toArray().every((v) => v === 0));
  assert.deepEqual(w.get('blocks.0.mlp.fc.weight')!.shape, [16, 64], 'dense weights are [in, out]');
  assert.equal(w.get('head.bias'), undefined, 'the LM head has no bias');
});

test('builders name the size that is wrong', () => {
  assert.throws(() => mlp({ inputs: 0, hidden: [], classes: 2, seed: 1 }), /mlp: inputs\[0\] must be a positive integer, got 0/);
  assert.throws(() => cnn({ input: [1, 28, 28], channels: [8], kernel: 4, classes: 2, seed: 1 }), /kernel must be odd/);
  assert.throws(() => cnn({ input: [1, 4, 4], channels: [2, 2, 2], classes: 2, seed: 1 }), /block c3 would pool a 1×1 map/);
  assert.throws(() => gpt({ vocab: 10, context: 4, dModel: 10, heads: 4, layers: 1, seed: 1 }), /dModel 10 is not divisible by heads 4/);
});
