import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../../src/index.js';
import { Model } from '../../src/model/model.js';
import { getAttr } from '../../src/onnx/proto.js';
import { tensorFromProto } from '../../src/onnx/tensor-proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { PADDLE_CLS, PADDLE_REC, bitMismatches, seeded } from '../helpers.js';

const rand = seeded(3);
const image = (n: number, w: number) => Tensor.float32(Array.from({ length: n * 3 * 48 * w }, () => rand()), [n, 3, 48, w]);

/** A weight the Paddle exporter stored as a Constant node. */
function constant(model: Model, name: string): Float32Array {
  const node = model.graph.nodes.find((n) => n.opType === 'Constant' && n.output[0] === name)!;
  return tensorFromProto(getAttr(node, 'value')!.t!).data as Float32Array;
}

test('PaddleOCR classifier: sites, capture, and a channel ablation whose effect is exactly BatchNorm of zero', async () => {
  const model = await Model.load(PADDLE_CLS, { inputShapes: { x: [2, 3, 48, 192] } });
  assert.equal(model.sites.length, 1 + model.graph.nodes.filter((n) => n.opType !== 'Constant').length);
  assert.equal(model.sites.length, 222);
  assert.deepEqual(model.site('conv2d_53.tmp_0').shape, [2, 8, 24, 96]);
  const x = image(2, 192);
  const plain = await model.run({ x });
  const p = plain.outputs['softmax_0.tmp_0'];
  for (let r = 0; r < 2; r++) assert.ok(Math.abs(p.at(2 * r) + p.at(2 * r + 1) - 1) < 1e-6, 'probabilities sum to 1');

  const unit = 3;
  const { outputs, captures } = await model.run(
    { x },
    { interventions: [{ site: 'conv2d_53.tmp_0', kind: 'zero', units: [unit] }], capture: ['x', 'batch_norm_0.tmp_3'] },
  );
  // BatchNorm(0) = beta - gamma * mean / sqrt(var + eps) in every position of the ablated channel.
  const bnNode = model.graph.nodes.find((n) => n.output[0] === 'batch_norm_0.tmp_3')!;
  const [gamma, beta, mean, variance] = bnNode.input.slice(1).map((w) => constant(model, w));
  const eps = getAttr(bnNode, 'epsilon')?.f ?? 1e-5;
  const expected = beta[unit] - (gamma[unit] * mean[unit]) / Math.sqrt(variance[unit] + eps);
  const bn = captures['batch_norm_0.tmp_3'];
  const plane = 24 * 96;
  for (let b = 0; b < 2; b++) {
    for (let i = 0; i < plane; i++) {
      const v = bn.at((b * 8 + unit) * plane + i);
      assert.ok(Math.abs(v - expected) < 1e-5, `bn[${b},${unit}] = ${v}, closed form ${expected}`);
    }
  }
  assert.equal(bitMismatches(captures.x, x), 0, 'upstream of the ablation nothing changes');
  assert.ok(bitMismatches(outputs['softmax_0.tmp_0'], p) > 0, 'the output changes');
});

test('PaddleOCR recogniser (self-attention): capture attention weights, ablate a channel, see the output change', async () => {
  const model = await Model.load(PADDLE_REC, { inputShapes: { x: [1, 3, 48, 160] } });
  const softmaxes = model.sites.filter((s) => s.op === 'Softmax');
  assert.ok(softmaxes.length >= 3);
  const attn = softmaxes.find((s) => s.shape?.length === 4 && s.shape[3] === s.shape[2] && (s.shape[3] as number) > 1)!;
  assert.ok(attn, 'an attention-weight softmax [N, heads, T, T]');
  const x = image(1, 160);
  const plain = await model.run({ x }, { capture: [attn.name] });
  const a = plain.captures[attn.name];
  const t = a.shape[3];
  for (let row = 0; row < a.size / t; row++) {
    let s = 0;
    for (let j = 0; j < t; j++) s += a.at(row * t + j);
    assert.ok(Math.abs(s - 1) < 1e-5, 'attention rows sum to 1');
  }
  const conv = model.sites.find((s) => s.op === 'Conv')!;
  const ablated = await model.run({ x }, { interventions: [{ site: conv.name, kind: 'zero', units: [0, 1, 2, 3] }] });
  const out = model.outputs[0].name;
  assert.ok(bitMismatches(ablated.outputs[out], plain.outputs[out]) > 0);
});
