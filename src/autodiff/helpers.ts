/** Shared pieces of VJP rules: attribute reading, axis lists, and reducing a broadcast gradient to its input's shape. */
import { attr, getAttr, type NodeProto } from '../onnx/proto.js';
import { Tensor } from '../runtime/tensor.js';
import type { Emitter, ValueShape } from './types.js';

export function intAttr(node: NodeProto, name: string, fallback: number): number {
  const a = getAttr(node, name);
  return a ? Number(a.i) : fallback;
}

export function intsAttr(node: NodeProto, name: string): number[] | undefined {
  const a = getAttr(node, name);
  return a ? a.ints.map(Number) : undefined;
}

export function floatAttr(node: NodeProto, name: string, fallback: number): number {
  const a = getAttr(node, name);
  return a ? a.f : fallback;
}

/** ReduceSum over `axes` (attribute before opset 13, input after). */
export function reduceSum(e: Emitter, x: string, axes: readonly number[], keepdims: boolean): string {
  if (axes.length === 0) return x;
  if (e.opset >= 13) {
    return e.op1('ReduceSum', [x, e.constant(Tensor.int64(axes))], [attr('keepdims', { int: keepdims ? 1 : 0 })]);
  }
  return e.op1('ReduceSum', [x], [attr('axes', { ints: axes }), attr('keepdims', { int: keepdims ? 1 : 0 })]);
}

/**
 * Sums a gradient of the broadcast result's shape back to an input's shape: over the leading axes the input lacks,
 * and over axes where the input has a fixed 1 and the result does not. Needs both ranks; throws naming the value.
 */
export function unbroadcast(e: Emitter, grad: string, input: ValueShape, result: ValueShape, what: string): string {
  const a = input.shape;
  const r = result.shape;
  if (!a || !r) throw new Error(`${what}: the shapes needed to undo broadcasting are unknown`);
  const lead = r.length - a.length;
  const axes: number[] = [];
  for (let i = 0; i < lead; i++) axes.push(i);
  const kept: number[] = [];
  a.forEach((d, i) => {
    if (d === 1 && r[lead + i] !== 1) kept.push(lead + i);
  });
  let g = grad;
  if (kept.length) g = reduceSum(e, g, kept, true);
  if (axes.length) g = reduceSum(e, g, axes, false);
  return g;
}

/** ReduceMean over `axes` (attribute before opset 18, input after). */
export function reduceMean(e: Emitter, x: string, axes: readonly number[], keepdims: boolean): string {
  if (e.opset >= 18) {
    return e.op1('ReduceMean', [x, e.constant(Tensor.int64(axes))], [attr('keepdims', { int: keepdims ? 1 : 0 })]);
  }
  return e.op1('ReduceMean', [x], [attr('axes', { ints: axes }), attr('keepdims', { int: keepdims ? 1 : 0 })]);
}

/** Unsqueeze at `axes` (attribute before opset 13, input after). */
export function unsqueeze(e: Emitter, x: string, axes: readonly number[]): string {
  if (axes.length === 0) return x;
  return e.opset >= 13 ? e.op1('Unsqueeze', [x, e.constant(Tensor.int64(axes))]) : e.op1('Unsqueeze', [x], [attr('axes', { ints: axes })]);
}
