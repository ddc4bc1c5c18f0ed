import { test } from 'node:test';
import { attr } from '../../src/onnx/proto.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { checkRule, distinct, randomTensor as r, type RuleCase } from './check-rule.js';

const i64 = (xs: number[]) => Tensor.int64(xs);
const ints = (name: string, v: number[]) => attr(name, { ints: v });
const int = (name: string, v: number) => attr(name, { int: v });

/** One row per rule and edge case; add a case here to put a rule under finite differences. */
const CASES: (RuleCase & { name: string })[] = [
  { name: 'Add broadcast [2,3,4]+[3,1]', op: 'Add', inputs: { a: r([2, 3, 4], 1), b: r([3, 1], 2) }, order: ['a', 'b'] },
  { name: 'Sub broadcast scalar', op: 'Sub', inputs: { a: r([2, 3], 3), b: r([], 4) }, order: ['a', 'b'] },
  { name: 'Mul broadcast [4]·[2,3,4]', op: 'Mul', inputs: { a: r([4], 5), b: r([2, 3, 4], 6) }, order: ['a', 'b'] },
  { name: 'Div', op: 'Div', inputs: { a: r([2, 3], 7), b: r([2, 3], 8, 0.5, 2) }, order: ['a', 'b'] },
  { name: 'Pow', op: 'Pow', inputs: { a: r([5], 9, 0.5, 2), b: r([5], 10, 0.5, 3) }, order: ['a', 'b'] },
  { name: 'Neg', op: 'Neg', inputs: { x: r([6], 11) }, order: ['x'] },
  { name: 'Relu away from 0', op: 'Relu', inputs: { x: r([3, 4], 12, -1, 1, 0.05) }, order: ['x'] },
  { name: 'LeakyRelu', op: 'LeakyRelu', inputs: { x: r([8], 13, -1, 1, 0.05) }, order: ['x'], attributes: [attr('alpha', { float: 0.2 })] },
  { name: 'Sigmoid', op: 'Sigmoid', inputs: { x: r([6], 14, -3, 3) }, order: ['x'] },
  { name: 'Tanh', op: 'Tanh', inputs: { x: r([6], 15, -2, 2) }, order: ['x'] },
  { name: 'Exp', op: 'Exp', inputs: { x: r([6], 16) }, order: ['x'] },
  { name: 'Log', op: 'Log', inputs: { x: r([6], 17, 0.5, 3) }, order: ['x'] },
  { name: 'Sqrt', op: 'Sqrt', inputs: { x: r([6], 18, 0.5, 3) }, order: ['x'] },
  { name: 'Erf', op: 'Erf', inputs: { x: r([6], 19, -2, 2) }, order: ['x'] },
  { name: 'HardSigmoid', op: 'HardSigmoid', inputs: { x: r([12], 20, -4, 4) }, order: ['x'], attributes: [attr('alpha', { float: 1 / 6 })], eps: 1e-3 },
  { name: 'HardSwish', op: 'HardSwish', inputs: { x: r([12], 21, -4, 4) }, order: ['x'], eps: 1e-3 },
  { name: 'Clip with bounds', op: 'Clip', inputs: { x: r([10], 22, -2, 2) }, consts: { lo: Tensor.float32([-0.5], []), hi: Tensor.float32([0.7], []) }, order: ['x', 'lo', 'hi'], eps: 1e-3 },
  { name: 'Where', op: 'Where', inputs: { x: r([2, 3], 23), y: r([3], 24) }, consts: { c: Tensor.bool([1, 0, 1, 0, 0, 1], [2, 3]) }, order: ['c', 'x', 'y'] },
  { name: 'Gemm transB with bias', op: 'Gemm', inputs: { a: r([3, 4], 25), b: r([5, 4], 26), c: r([5], 27) }, order: ['a', 'b', 'c'], attributes: [int('transB', 1), attr('alpha', { float: 0.5 }), attr('beta', { float: 2 })] },
  { name: 'Gemm transA', op: 'Gemm', inputs: { a: r([4, 3], 28), b: r([4, 5], 29) }, order: ['a', 'b'], attributes: [int('transA', 1)] },
  { name: 'MatMul batched broadcast', op: 'MatMul', inputs: { a: r([2, 3, 4], 30), b: r([4, 5], 31) }, order: ['a', 'b'] },
  { name: 'MatMul rank 4 by a matrix (dense over positions)', op: 'MatMul', inputs: { a: r([2, 2, 3, 4], 303), b: r([4, 5], 304) }, order: ['a', 'b'] },
  { name: 'MatMul batch 1 vs 2', op: 'MatMul', inputs: { a: r([1, 3, 4], 32), b: r([2, 4, 2], 33) }, order: ['a', 'b'] },
  { name: 'MatMul vector', op: 'MatMul', inputs: { a: r([4], 34), b: r([2, 4, 3], 35) }, order: ['a', 'b'] },
  { name: 'Reshape', op: 'Reshape', inputs: { x: r([2, 6], 36) }, consts: { s: i64([3, -1]) }, order: ['x', 's'] },
  { name: 'Flatten', op: 'Flatten', inputs: { x: r([2, 3, 2], 37) }, order: ['x'], attributes: [int('axis', 1)] },
  { name: 'Transpose', op: 'Transpose', inputs: { x: r([2, 3, 4], 38) }, order: ['x'], attributes: [ints('perm', [2, 0, 1])] },
  { name: 'Concat', op: 'Concat', inputs: { a: r([2, 3], 39), b: r([2, 1], 40) }, order: ['a', 'b'], attributes: [int('axis', 1)] },
  { name: 'Slice with steps', op: 'Slice', inputs: { x: r([4, 6], 41) }, consts: { st: i64([1, 0]), en: i64([4, 6]), ax: i64([0, 1]), sp: i64([2, 2]) }, order: ['x', 'st', 'en', 'ax', 'sp'] },
  { name: 'Gather with repeats', op: 'Gather', inputs: { x: r([5, 3], 42) }, consts: { i: i64([0, 2, 2, -1]) }, order: ['x', 'i'] },
  { name: 'Gather axis 1, 2-D indices', op: 'Gather', inputs: { x: r([2, 5, 3], 43) }, consts: { i: i64([1, 4, 1, 0]).reshape([2, 2]) }, order: ['x', 'i'], attributes: [int('axis', 1)] },
  { name: 'GatherElements last axis, repeats and a negative index', op: 'GatherElements', inputs: { x: r([2, 3, 4], 301) }, consts: { i: i64([0, 3, 3, -1, 1, 1, 2, 0, 0, 3, -4, 2, 1, 1, 1, 0, 2, 3]).reshape([2, 3, 3]) }, order: ['x', 'i'], attributes: [int('axis', -1)] },
  { name: 'GatherElements axis 0, fewer rows', op: 'GatherElements', inputs: { x: r([3, 2], 302) }, consts: { i: i64([2, 0, 2, 2]).reshape([2, 2]) }, order: ['x', 'i'] },
  { name: 'Expand', op: 'Expand', inputs: { x: r([3, 1], 44) }, consts: { s: i64([2, 3, 4]) }, order: ['x', 's'] },
  { name: 'Conv padded with bias', op: 'Conv', inputs: { x: r([2, 3, 5, 5], 45), w: r([4, 3, 3, 3], 46), b: r([4], 47) }, order: ['x', 'w', 'b'], attributes: [ints('pads', [1, 1, 1, 1])] },
  { name: 'Conv strided, dilated, asymmetric pads', op: 'Conv', inputs: { x: r([1, 2, 7, 6], 48), w: r([3, 2, 2, 3], 49) }, order: ['x', 'w'], attributes: [ints('strides', [2, 3]), ints('dilations', [2, 1]), ints('pads', [1, 0, 0, 2])] },
  { name: 'Conv grouped', op: 'Conv', inputs: { x: r([2, 4, 5, 5], 50), w: r([6, 2, 3, 3], 51) }, order: ['x', 'w'], attributes: [int('group', 2)] },
  { name: 'Conv depthwise SAME_UPPER stride 2', op: 'Conv', inputs: { x: r([1, 3, 6, 6], 52), w: r([3, 1, 3, 3], 53) }, order: ['x', 'w'], attributes: [int('group', 3), ints('strides', [2, 2]), attr('auto_pad', { string: 'SAME_UPPER' })] },
  { name: 'Conv 1-D', op: 'Conv', inputs: { x: r([2, 2, 9], 54), w: r([3, 2, 4], 55) }, order: ['x', 'w'], attributes: [ints('strides', [2])] },
  { name: 'MaxPool overlapping windows', op: 'MaxPool', inputs: { x: distinct([2, 2, 5, 5], 56) }, eps: 5e-3, order: ['x'], attributes: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2])] },
  { name: 'MaxPool 2x2', op: 'MaxPool', inputs: { x: distinct([1, 3, 4, 4], 57) }, order: ['x'], attributes: [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])] },
  { name: 'GlobalAveragePool', op: 'GlobalAveragePool', inputs: { x: r([2, 3, 4, 4], 58) }, order: ['x'] },
  { name: 'Softmax last axis', op: 'Softmax', inputs: { x: r([2, 5], 59, -2, 2) }, order: ['x'] },
  { name: 'Softmax opset 11 (2-D coercion)', op: 'Softmax', inputs: { x: r([2, 2, 3], 60, -2, 2) }, order: ['x'], opset: 11, attributes: [int('axis', 1)] },
  { name: 'LogSoftmax', op: 'LogSoftmax', inputs: { x: r([3, 4], 61, -2, 2) }, order: ['x'] },
  { name: 'LayerNormalization', op: 'LayerNormalization', inputs: { x: r([2, 3, 4], 62, -2, 2), s: r([4], 63, 0.5, 1.5), b: r([4], 64) }, order: ['x', 's', 'b'] },
  { name: 'LayerNormalization axis 1', op: 'LayerNormalization', inputs: { x: r([2, 3, 2], 65, -2, 2), s: r([3, 2], 66, 0.5, 1.5) }, order: ['x', 's'], attributes: [int('axis', 1)] },
  {
    name: 'BatchNormalization (inference)', op: 'BatchNormalization',
    inputs: { x: r([2, 3, 2, 2], 67), s: r([3], 68, 0.5, 1.5), b: r([3], 69) },
    consts: { m: Tensor.float32([0.1, -0.2, 0.3], [3]), v: Tensor.float32([0.5, 1.5, 2], [3]) },
    order: ['x', 's', 'b', 'm', 'v'],
  },
  { name: 'ReduceSum axes input, keepdims 0', op: 'ReduceSum', inputs: { x: r([2, 3, 4], 70) }, consts: { ax: i64([1]) }, order: ['x', 'ax'], attributes: [int('keepdims', 0)] },
  { name: 'ReduceMean opset 17', op: 'ReduceMean', inputs: { x: r([2, 3, 4], 71) }, order: ['x'], attributes: [ints('axes', [0, 2])] },
];

for (const c of CASES) test(`VJP ${c.name} matches finite differences`, async () => void (await checkRule(c)));
