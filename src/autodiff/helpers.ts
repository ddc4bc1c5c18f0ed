/** Shared pieces of VJP rules: attribute reading, axis lists, and reducing a broadcast gradient to its input's shape. */
import { attr, getAttr, type NodeProto } from '../onnx/proto.js';
import { Tensor, type DType } from '../runtime/tensor.js';
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

/** A constant float tensor in dtype `t` (built as float32/float64, cast for other float types). */
export function floatConst(e: Emitter, values: ArrayLike<number>, shape: readonly number[], t: DType): string {
  if (t === 'float64') return e.constant(Tensor.float64(values, shape));
  const c = e.constant(Tensor.float32(values, shape));
  return t === 'float32' ? c : e.op1('Cast', [c], [attr('to', { int: t === 'float16' ? 10 : 1 })]);
}

const INT64_MAX = 9223372036854775807n;

/** Slice with starts/ends/axes as inputs (opset 10+) or attributes (before); `end` null means to the end. */
export function slice(e: Emitter, x: string, starts: readonly number[], ends: readonly (number | null)[], axes: readonly number[]): string {
  if (axes.length === 0) return x;
  if (e.opset >= 10) {
    const endT = Tensor.int64(ends.map((v) => (v === null ? INT64_MAX : BigInt(v))));
    return e.op1('Slice', [x, e.constant(Tensor.int64(starts)), e.constant(endT), e.constant(Tensor.int64(axes))]);
  }
  const big = 2147483647; // opset < 10 takes ints attributes; INT_MAX reads as "to the end"
  return e.op1('Slice', [x], [attr('starts', { ints: starts }), attr('ends', { ints: ends.map((v) => (v === null ? big : v)) }), attr('axes', { ints: axes })]);
}

/** Pads with zeros: `pads` as an int64 input (opset 11+) or an attribute (before), ONNX order [begins…, ends…]. */
export function padZeros(e: Emitter, x: string, pads: readonly number[]): string {
  if (pads.every((p) => p === 0)) return x;
  if (e.opset >= 11) return e.op1('Pad', [x, e.constant(Tensor.int64(pads))]);
  return e.op1('Pad', [x], [attr('pads', { ints: pads })]);
}
