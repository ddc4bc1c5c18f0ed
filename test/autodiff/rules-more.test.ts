import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGradGraph } from '../../src/autodiff/grad.js';
import { defaultRules } from '../../src/autodiff/rules/index.js';
import { Graph } from '../../src/onnx/graph.js';
import { attr, makeGraph, makeModel, makeNode, makeValueInfo, type AttributeProto } from '../../src/onnx/proto.js';
import { ONNX_DTYPE } from '../../src/onnx/tensor-proto.js';
import { nodeRuntime } from '../../src/runtime/node.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { checkRule, randomTensor as r, type RuleCase } from './check-rule.js';

const i64 = (xs: number[]) => Tensor.int64(xs);
const f32 = (xs: number[], shape?: number[]) => Tensor.float32(xs, shape);
const ints = (name: string, v: number[]) => attr(name, { ints: v });
const int = (name: string, v: number) => attr(name, { int: v });
const str = (name: string, v: string) => attr(name, { string: v });
/** Distinct values spaced 2/n apart in a shuffled order: finite differences never change which element is extreme. */
function distinct(shape: number[], seed: number): Tensor<'float32'> {
  const n = shape.reduce((a, b) => a * b, 1);
  const order = r([n], seed).toArray().map((k, i) => [k, i]).sort((x, y) => x[0] - y[0]).map(([, i]) => i);
  const out = new Float32Array(n);
  order.forEach((i, rank) => (out[i] = -1 + (2 * rank) / n));
  return new Tensor('float32', out, shape);
}
const pool = (k: number[], s: number[], more: AttributeProto[] = []) => [ints('kernel_shape', k), ints('strides', s), ...more];

/** One row per rule and edge case, as in rules.test.ts; eps stays below half the spacing of `distinct` values. */
const CASES: (RuleCase & { name: string })[] = [
  // AveragePool: counts with and without pads, ceil_mode overhang, unused trailing rows, dilations, SAME padding.
  { name: 'AveragePool 3x3 pads 1, count_include_pad 0', op: 'AveragePool', inputs: { x: r([2, 2, 5, 5], 1) }, order: ['x'], attributes: pool([3, 3], [1, 1], [ints('pads', [1, 1, 1, 1])]) },
  { name: 'AveragePool 3x3 pads 1, count_include_pad 1', op: 'AveragePool', inputs: { x: r([2, 2, 5, 5], 2) }, order: ['x'], attributes: pool([3, 3], [1, 1], [ints('pads', [1, 1, 1, 1]), int('count_include_pad', 1)]) },
  { name: 'AveragePool 2x2 stride 2', op: 'AveragePool', inputs: { x: r([1, 3, 4, 4], 3) }, order: ['x'], attributes: pool([2, 2], [2, 2]) },
  { name: 'AveragePool ceil_mode overhang', op: 'AveragePool', inputs: { x: r([1, 2, 6, 6], 4) }, order: ['x'], attributes: pool([3, 3], [2, 2], [int('ceil_mode', 1)]) },
  { name: 'AveragePool ceil_mode, pads, count_include_pad 1', op: 'AveragePool', inputs: { x: r([1, 2, 6, 7], 5) }, order: ['x'], attributes: pool([3, 3], [2, 2], [int('ceil_mode', 1), ints('pads', [1, 1, 1, 1]), int('count_include_pad', 1)]) },
  { name: 'AveragePool stride leaves trailing rows unused', op: 'AveragePool', inputs: { x: r([1, 1, 6, 7], 6) }, order: ['x'], attributes: pool([2, 2], [3, 3]) },
  { name: 'AveragePool asymmetric pads, rectangular kernel', op: 'AveragePool', inputs: { x: r([1, 2, 5, 6], 7) }, order: ['x'], attributes: pool([2, 3], [1, 2], [ints('pads', [0, 1, 1, 2])]) },
  { name: 'AveragePool 1-D', op: 'AveragePool', inputs: { x: r([2, 3, 9], 8) }, order: ['x'], attributes: pool([4], [2], [ints('pads', [1, 2]), int('count_include_pad', 1)]) },
  { name: 'AveragePool dilations (opset 19)', op: 'AveragePool', inputs: { x: r([1, 2, 7, 7], 9) }, order: ['x'], opset: 19, attributes: pool([2, 2], [1, 2], [ints('dilations', [2, 3]), ints('pads', [1, 1, 1, 1])]) },
  { name: 'AveragePool SAME_UPPER', op: 'AveragePool', inputs: { x: r([1, 2, 5, 5], 10) }, order: ['x'], attributes: pool([2, 2], [2, 2], [str('auto_pad', 'SAME_UPPER')]) },
  { name: 'AveragePool ceil_mode at opset 11', op: 'AveragePool', inputs: { x: r([1, 1, 5, 5], 11) }, order: ['x'], opset: 11, attributes: pool([2, 2], [2, 2], [int('ceil_mode', 1), int('count_include_pad', 1)]) },
  // ConvTranspose: input, weight and bias gradients over groups, strides, pads, output_padding, dilations.
  { name: 'ConvTranspose with bias', op: 'ConvTranspose', inputs: { x: r([2, 2, 3, 3], 20), w: r([2, 3, 3, 3], 21), b: r([3], 22) }, order: ['x', 'w', 'b'] },
  { name: 'ConvTranspose stride 2, pads, output_padding', op: 'ConvTranspose', inputs: { x: r([1, 2, 3, 4], 23), w: r([2, 2, 3, 3], 24) }, order: ['x', 'w'], attributes: [ints('strides', [2, 2]), ints('pads', [1, 0, 1, 2]), ints('output_padding', [1, 0])] },
  { name: 'ConvTranspose grouped, dilated', op: 'ConvTranspose', inputs: { x: r([2, 4, 3, 3], 25), w: r([4, 3, 2, 3], 26) }, order: ['x', 'w'], attributes: [int('group', 2), ints('dilations', [2, 1]), ints('strides', [1, 2])] },
  { name: 'ConvTranspose depthwise', op: 'ConvTranspose', inputs: { x: r([1, 3, 4, 4], 27), w: r([3, 1, 3, 3], 28), b: r([3], 29) }, order: ['x', 'w', 'b'], attributes: [int('group', 3), ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1])] },
  { name: 'ConvTranspose 1-D dilated, output_padding 2', op: 'ConvTranspose', inputs: { x: r([1, 1, 4], 30), w: r([1, 2, 2], 31) }, order: ['x', 'w'], attributes: [ints('strides', [3]), ints('dilations', [3]), ints('output_padding', [2])] },
  { name: 'ConvTranspose output_shape beyond the natural extent', op: 'ConvTranspose', inputs: { x: r([1, 1, 3, 2], 39), w: r([1, 2, 2, 2], 19) }, order: ['x', 'w'], attributes: [ints('strides', [2, 1]), ints('output_shape', [7, 3])] },
  { name: 'ConvTranspose SAME_LOWER', op: 'ConvTranspose', inputs: { x: r([1, 1, 3, 3], 18), w: r([1, 1, 2, 2], 17) }, order: ['x', 'w'], attributes: [ints('strides', [2, 2]), str('auto_pad', 'SAME_LOWER')] },
  { name: 'ConvTranspose output_shape', op: 'ConvTranspose', inputs: { x: r([1, 2, 3, 3], 32), w: r([2, 2, 3, 3], 33) }, order: ['x', 'w'], attributes: [ints('strides', [2, 2]), ints('output_shape', [6, 5])] },
  { name: 'ConvTranspose SAME_UPPER stride 2', op: 'ConvTranspose', inputs: { x: r([1, 2, 3, 3], 34), w: r([2, 1, 3, 3], 35) }, order: ['x', 'w'], attributes: [ints('strides', [2, 2]), str('auto_pad', 'SAME_UPPER')] },
  { name: 'ConvTranspose 1-D at opset 11', op: 'ConvTranspose', inputs: { x: r([2, 2, 5], 36), w: r([2, 3, 3], 37), b: r([3], 38) }, order: ['x', 'w', 'b'], opset: 11, attributes: [ints('strides', [3]), ints('pads', [2, 1]), ints('output_padding', [1])] },
  // ReduceMax/ReduceMin: axes as attribute and input, keepdims, all axes, a two-way tie (half to each).
  { name: 'ReduceMax axes [1]', op: 'ReduceMax', inputs: { x: distinct([2, 3, 4], 40) }, order: ['x'], attributes: [ints('axes', [1])], eps: 1e-3 },
  { name: 'ReduceMin axes [0, 2], keepdims 0', op: 'ReduceMin', inputs: { x: distinct([2, 3, 4], 41) }, order: ['x'], attributes: [ints('axes', [0, 2]), int('keepdims', 0)], eps: 1e-3 },
  { name: 'ReduceMax all axes, keepdims 0', op: 'ReduceMax', inputs: { x: distinct([3, 4], 42) }, order: ['x'], attributes: [int('keepdims', 0)], eps: 1e-3 },
  { name: 'ReduceMax axes input (opset 18)', op: 'ReduceMax', inputs: { x: distinct([2, 3, 4], 43) }, consts: { ax: i64([-1]) }, order: ['x', 'ax'], opset: 18, attributes: [int('keepdims', 0)], eps: 1e-3 },
  { name: 'ReduceMin opset 11, keepdims 0', op: 'ReduceMin', inputs: { x: distinct([2, 5], 44) }, order: ['x'], opset: 11, attributes: [ints('axes', [1]), int('keepdims', 0)], eps: 1e-3 },
  { name: 'ReduceMax two-way tie', op: 'ReduceMax', inputs: { x: f32([0.5, -0.3, 0.5, 0.1, 0.2, 0.9, 0.9, -1], [2, 4]) }, order: ['x'], attributes: [ints('axes', [1])], eps: 1e-3 },
  { name: 'GlobalMaxPool', op: 'GlobalMaxPool', inputs: { x: distinct([2, 3, 3, 3], 45) }, order: ['x'], eps: 1e-3 },
  { name: 'GlobalMaxPool two-way tie', op: 'GlobalMaxPool', inputs: { x: f32([0.7, 0.1, 0.7, -0.4, 0.3, 0.2, 0.8, 0.1], [1, 2, 2, 2]) }, order: ['x'], eps: 1e-3 },
  // Max/Min: n-ary with broadcasting; ties between two inputs give half to each (torch.maximum).
  { name: 'Max two inputs', op: 'Max', inputs: { a: distinct([2, 3], 50), b: distinct([2, 3], 51) }, order: ['a', 'b'], eps: 1e-3 },
  { name: 'Max broadcast with ties', op: 'Max', inputs: { a: f32([0.2, -0.5, 0.7, 0.2, 0.9, -0.1], [2, 3]), b: f32([0.2, 0.4, 0.7], [3]) }, order: ['a', 'b'], eps: 1e-3 },
  { name: 'Min three inputs broadcast', op: 'Min', inputs: { a: distinct([2, 1, 4], 52), b: distinct([3, 1], 53), c: distinct([4], 54) }, order: ['a', 'b', 'c'], eps: 1e-3 },
  { name: 'Max opset 11', op: 'Max', inputs: { a: distinct([3, 2], 55), b: distinct([2], 56) }, order: ['a', 'b'], opset: 11, eps: 1e-3 },
  { name: 'Min single input', op: 'Min', inputs: { a: r([4], 57) }, order: ['a'] },
  // Sum/Mean: n-ary with broadcasting.
  { name: 'Sum three inputs broadcast', op: 'Sum', inputs: { a: r([2, 3, 4], 60), b: r([3, 1], 61), c: r([], 62) }, order: ['a', 'b', 'c'] },
  { name: 'Mean broadcast', op: 'Mean', inputs: { a: r([2, 3], 63), b: r([1, 3], 64), c: r([2, 1], 65) }, order: ['a', 'b', 'c'] },
  { name: 'Mean opset 11', op: 'Mean', inputs: { a: r([2, 3], 66), b: r([3], 67) }, order: ['a', 'b'], opset: 11 },
  { name: 'Sum single input', op: 'Sum', inputs: { a: r([5], 68) }, order: ['a'] },
  // Pad: constant (with the fill value's gradient, negative pads, axes), reflect, edge, wrap, attribute forms.
  { name: 'Pad constant with value input', op: 'Pad', inputs: { x: r([2, 3, 4], 70), v: f32([0.3], []) }, consts: { p: i64([0, 1, 2, 1, 0, 3]) }, order: ['x', 'p', 'v'] },
  { name: 'Pad constant, negative pads crop', op: 'Pad', inputs: { x: r([3, 5], 71) }, consts: { p: i64([-1, 2, 1, -2]) }, order: ['x', 'p'] },
  { name: 'Pad constant, axes input (opset 18)', op: 'Pad', inputs: { x: r([2, 3, 4], 72) }, consts: { p: i64([1, 2, 0, 1]), ax: i64([-1, 0]) }, order: ['x', 'p', '', 'ax'], opset: 18 },
  { name: 'Pad reflect', op: 'Pad', inputs: { x: r([1, 2, 4, 5], 73) }, consts: { p: i64([0, 0, 2, 3, 0, 0, 3, 1]) }, order: ['x', 'p'], attributes: [str('mode', 'reflect')] },
  { name: 'Pad edge', op: 'Pad', inputs: { x: r([2, 3, 3], 74) }, consts: { p: i64([0, 2, 1, 0, 3, 0]) }, order: ['x', 'p'], attributes: [str('mode', 'edge')] },
  { name: 'Pad wrap (opset 19)', op: 'Pad', inputs: { x: r([2, 3, 4], 75) }, consts: { p: i64([0, 2, 1, 0, 1, 3]) }, order: ['x', 'p'], opset: 19, attributes: [str('mode', 'wrap')] },
  { name: 'Pad attributes (opset 10)', op: 'Pad', inputs: { x: r([2, 3], 76) }, order: ['x'], opset: 10, attributes: [ints('pads', [1, 0, 0, 2]), attr('value', { float: 0.5 })] },
  { name: 'Pad reflect attributes (opset 9)', op: 'Pad', inputs: { x: r([3, 4], 77) }, order: ['x'], opset: 9, attributes: [ints('pads', [1, 2, 2, 1]), str('mode', 'reflect')] },
  // Resize: nearest (every nearest_mode), linear and cubic under each coordinate transform, scales and sizes.
  { name: 'Resize nearest x2 (half_pixel, round_prefer_floor)', op: 'Resize', inputs: { x: r([1, 2, 3, 3], 80) }, consts: { s: f32([1, 1, 2, 2]) }, order: ['x', '', 's'] },
  { name: 'Resize nearest asymmetric floor, up and down', op: 'Resize', inputs: { x: r([1, 1, 4, 6], 81) }, consts: { s: f32([1, 1, 1.5, 0.5]) }, order: ['x', '', 's'], attributes: [str('coordinate_transformation_mode', 'asymmetric'), str('nearest_mode', 'floor')] },
  { name: 'Resize nearest sizes, align_corners, round_prefer_ceil', op: 'Resize', inputs: { x: r([1, 2, 3, 4], 82) }, consts: { z: i64([1, 2, 5, 7]) }, order: ['x', '', '', 'z'], attributes: [str('coordinate_transformation_mode', 'align_corners'), str('nearest_mode', 'round_prefer_ceil')] },
  { name: 'Resize nearest ceil, tf_half_pixel_for_nn (opset 11)', op: 'Resize', inputs: { x: r([1, 1, 5, 3], 83) }, consts: { roi: f32([]), s: f32([1, 1, 0.6, 1.7]) }, order: ['x', 'roi', 's'], opset: 11, attributes: [str('coordinate_transformation_mode', 'tf_half_pixel_for_nn'), str('nearest_mode', 'ceil')] },
  { name: 'Resize nearest opset 10', op: 'Resize', inputs: { x: r([1, 2, 3, 2], 84) }, consts: { s: f32([1, 1, 2, 3]) }, order: ['x', 's'], opset: 10 },
  { name: 'Resize linear x2 half_pixel', op: 'Resize', inputs: { x: r([2, 2, 3, 4], 85) }, consts: { s: f32([1, 1, 2, 2]) }, order: ['x', '', 's'], attributes: [str('mode', 'linear')] },
  { name: 'Resize linear sizes align_corners', op: 'Resize', inputs: { x: r([1, 1, 3, 4], 86) }, consts: { z: i64([1, 1, 5, 7]) }, order: ['x', '', '', 'z'], attributes: [str('mode', 'linear'), str('coordinate_transformation_mode', 'align_corners')] },
  { name: 'Resize linear downsample pytorch_half_pixel', op: 'Resize', inputs: { x: r([1, 2, 7, 5], 87) }, consts: { s: f32([1, 1, 0.6, 0.4]) }, order: ['x', '', 's'], attributes: [str('mode', 'linear'), str('coordinate_transformation_mode', 'pytorch_half_pixel')] },
  { name: 'Resize linear tf_crop_and_resize with extrapolation', op: 'Resize', inputs: { x: r([1, 1, 4, 5], 88) }, consts: { roi: f32([0, 0, -0.2, 0.3, 1, 1, 0.9, 1.3]), z: i64([1, 1, 5, 4]) }, order: ['x', 'roi', '', 'z'], attributes: [str('mode', 'linear'), str('coordinate_transformation_mode', 'tf_crop_and_resize'), attr('extrapolation_value', { float: 2 })] },
  { name: 'Resize linear opset 11 (roi, scales)', op: 'Resize', inputs: { x: r([1, 2, 2, 3], 89) }, consts: { roi: f32([]), s: f32([1, 1, 2.5, 1.5]) }, order: ['x', 'roi', 's'], opset: 11, attributes: [str('mode', 'linear')] },
  { name: 'Resize linear axes [2, 3] (opset 18)', op: 'Resize', inputs: { x: r([1, 2, 3, 3], 90) }, consts: { s: f32([2, 1.5]) }, order: ['x', '', 's'], opset: 18, attributes: [str('mode', 'linear'), ints('axes', [2, 3])] },
  { name: 'Resize linear sizes not_larger (opset 18)', op: 'Resize', inputs: { x: r([1, 1, 3, 4], 91) }, consts: { z: i64([6, 6]) }, order: ['x', '', '', 'z'], opset: 18, attributes: [str('mode', 'linear'), ints('axes', [2, 3]), str('keep_aspect_ratio_policy', 'not_larger')] },
  { name: 'Resize linear half_pixel_symmetric (opset 19)', op: 'Resize', inputs: { x: r([1, 1, 4, 5], 92) }, consts: { s: f32([1, 1, 1.7, 0.7]) }, order: ['x', '', 's'], opset: 19, attributes: [str('mode', 'linear'), str('coordinate_transformation_mode', 'half_pixel_symmetric')] },
  { name: 'Resize cubic x2', op: 'Resize', inputs: { x: r([1, 2, 4, 4], 93) }, consts: { s: f32([1, 1, 2, 2]) }, order: ['x', '', 's'], attributes: [str('mode', 'cubic')] },
  { name: 'Resize cubic exclude_outside, a = -0.5', op: 'Resize', inputs: { x: r([1, 1, 5, 4], 94) }, consts: { s: f32([1, 1, 1.6, 2.5]) }, order: ['x', '', 's'], attributes: [str('mode', 'cubic'), int('exclude_outside', 1), attr('cubic_coeff_a', { float: -0.5 })] },
  // Tile and activations.
  { name: 'Tile', op: 'Tile', inputs: { x: r([2, 3, 2], 100) }, consts: { k: i64([2, 1, 3]) }, order: ['x', 'k'] },
  { name: 'Tile opset 11', op: 'Tile', inputs: { x: r([3, 2], 101) }, consts: { k: i64([1, 4]) }, order: ['x', 'k'], opset: 11 },
  { name: 'Gelu exact (opset 20)', op: 'Gelu', inputs: { x: r([12], 102, -3, 3) }, order: ['x'], opset: 20 },
  { name: 'Gelu tanh (opset 20)', op: 'Gelu', inputs: { x: r([12], 103, -3, 3) }, order: ['x'], opset: 20, attributes: [str('approximate', 'tanh')] },
  { name: 'Softsign', op: 'Softsign', inputs: { x: r([10], 104, -3, 3, 0.05) }, order: ['x'] },
  { name: 'Elu', op: 'Elu', inputs: { x: r([10], 105, -2, 2, 0.05) }, order: ['x'], attributes: [attr('alpha', { float: 0.7 })] },
  { name: 'Selu', op: 'Selu', inputs: { x: r([10], 106, -2, 2, 0.05) }, order: ['x'] },
  { name: 'Sin', op: 'Sin', inputs: { x: r([8], 107, -3, 3) }, order: ['x'] },
  { name: 'Cos', op: 'Cos', inputs: { x: r([8], 108, -3, 3) }, order: ['x'] },
];

for (const c of CASES) {
  test(`VJP ${c.name} matches finite differences`, async (t) => t.diagnostic(`worst relative error ${(await checkRule(c)).toExponential(2)}`));
}

/** The gradient of sum(y) for a one-node graph, for ties wider than central differences can see. */
async function gradOfSum(op: string, inputs: Record<string, Tensor>, attributes: AttributeProto[] = []): Promise<Tensor[]> {
  const names = Object.keys(inputs);
  const node = makeNode(op, names, ['y'], { name: `/${op}`, attributes });
  const proto = makeGraph({ name: op, node: [node], input: names.map((k) => makeValueInfo(k, ONNX_DTYPE.float32, inputs[k].shape)), output: [makeValueInfo('y')] });
  const g = new Graph(makeModel({ irVersion: 8n, opsetImport: [{ $typeName: 'onnx.OperatorSetIdProto', domain: '', version: 17n }], graph: proto }));
  const y = (await (await nodeRuntime.createSession(g.encode())).run(inputs)).y;
  const shapes = new Map<string, Tensor>([...Object.entries(inputs), ['y', y]]);
  const info = (v: string) => ({ dtype: shapes.get(v)?.dtype, shape: shapes.get(v)?.shape });
  const gg = buildGradGraph(g, { of: 'y', wrt: names, rules: defaultRules, info });
  const out = await (await nodeRuntime.createSession(gg.graph.encode())).run({ ...inputs, [gg.seed]: Tensor.float32(new Array<number>(y.size).fill(1), y.shape) });
  return names.map((k) => out[gg.grads[k]]);
}

test('ReduceMax splits the gradient evenly among a three-way tie (PyTorch amax)', async () => {
  const [dx] = await gradOfSum('ReduceMax', { x: f32([0.4, 0.4, -1, 0.4, 2, 0, 0, 1], [2, 4]) }, [ints('axes', [1])]);
  assert.deepEqual(dx.toArray().map((v) => +v.toFixed(6)), [1 / 3, 1 / 3, 0, 1 / 3, 1, 0, 0, 0].map((v) => +v.toFixed(6)));
});

test('Max over three tied inputs gives a third to each; Min of two ties gives half', async () => {
  const [a, b, c] = await gradOfSum('Max', { a: f32([1, 2]), b: f32([1, 0]), c: f32([1, 2]) });
  assert.deepEqual([a, b, c].map((t) => t.toArray().map((v) => +v.toFixed(6))), [[0.333333, 0.5], [0.333333, 0], [0.333333, 0.5]]);
  const [p, q] = await gradOfSum('Min', { p: f32([3, -1]), q: f32([3]) });
  assert.deepEqual([p.toArray(), q.toArray()], [[0.5, 1], [0.5]]);
});

test('rules that need a newer opset or an unsupported mode fail naming the op, the node and the reason', async () => {
  await assert.rejects(checkRule({ op: 'Max', inputs: { a: r([3], 1), b: r([3], 2) }, order: ['a', 'b'], opset: 9 }), /Max '\/Max'.*opset 11 or later.*opset 9/);
  await assert.rejects(
    checkRule({ op: 'Resize', inputs: { x: r([1, 1, 4, 4], 3) }, consts: { s: f32([1, 1, 0.5, 0.5]) }, order: ['x', '', 's'], opset: 18, attributes: [str('mode', 'linear'), int('antialias', 1)] }),
    /Resize '\/Resize'.*antialias/,
  );
  await assert.rejects(checkRule({ op: 'Tile', inputs: { x: r([2, 2], 4), k: Tensor.int64([2, 1]) }, order: ['x', 'k'], wrt: ['x'] }), /Tile '\/Tile'.*repeats computed at run time/);
});
