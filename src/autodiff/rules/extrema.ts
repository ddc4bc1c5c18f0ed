/**
 * VJP rules of extremum and n-ary ops: ReduceMax/ReduceMin, GlobalMaxPool, Max/Min, Sum/Mean. Ties follow PyTorch's
 * amax/amin and maximum/minimum: the gradient is split evenly among all inputs equal to the extremum,
 * dx = g · 1[x = y] / Σ 1[x = y] (for two tied inputs of Max, half to each), so the result is deterministic and its
 * total equals g. Central finite differences agree at two-way ties; wider ties are checked against the closed form.
 */
import { attr } from '../../onnx/proto.js';
import { ONNX_DTYPE } from '../../onnx/tensor-proto.js';
import { intAttr, intsAttr, reduceSum, unbroadcast, unsqueeze } from '../helpers.js';
import type { VjpArgs, VjpRule } from '../types.js';
import { dtypeOf, where } from './spatial.js';

function rankOf(a: VjpArgs, v: string): number {
  const r = a.info(v).shape?.length;
  if (r === undefined) throw new Error(`${where(a)}: the rank of '${v}' is unknown`);
  return r;
}

/** Equal on floats exists from opset 11. */
function needEqual(a: VjpArgs): void {
  if (a.emit.opset < 11) throw new Error(`${where(a)}: its gradient needs opset 11 or later (Equal on floats); the graph has opset ${a.emit.opset}`);
}

/** 1[x = y] in x's float dtype (y broadcasts). */
function hits(a: VjpArgs, x: string, y: string): string {
  return a.emit.op1('Cast', [a.emit.op1('Equal', [x, y])], [attr('to', { int: ONNX_DTYPE[dtypeOf(a, a.outputs[0])] })]);
}

/** The axes a Reduce* node reduces: the attribute (before opset 18), the constant second input (18+), or all. */
function reducedAxes(a: VjpArgs): number[] {
  const rank = rankOf(a, a.inputs[0]);
  let axes = intsAttr(a.node, 'axes');
  if (!axes && a.inputs[1]) {
    const t = a.constant(a.inputs[1]);
    if (!t) throw new Error(`${where(a)}: axes computed at run time cannot be differentiated through`);
    axes = t.toArray();
  }
  if (!axes || axes.length === 0) axes = intAttr(a.node, 'noop_with_empty_axes', 0) ? [] : Array.from({ length: rank }, (_, i) => i);
  return axes.map((x) => (x + rank) % rank).sort((x, y) => x - y);
}

/** dx = g·m/Σm over `axes`, m = 1[x = y]; y and g are given with the reduced axes kept (size 1). */
function spreadToExtremum(a: VjpArgs, x: string, y: string, g: string, axes: number[]): string {
  const e = a.emit;
  const mask = hits(a, x, y);
  const count = reduceSum(e, mask, axes, true);
  return e.op1('Mul', [mask, e.op1('Div', [g, count])]);
}

/** ReduceMax/ReduceMin: the gradient goes to the arg-extrema of each reduced slice, split evenly among ties. */
const reduceExtremum: VjpRule = (a) => {
  const g = a.grads[0];
  if (!g || !a.wants[0]) return [];
  needEqual(a);
  const axes = reducedAxes(a);
  if (axes.length === 0) return [g]; // noop_with_empty_axes: the identity
  const keep = intAttr(a.node, 'keepdims', 1) === 1;
  const y = keep ? a.outputs[0] : unsqueeze(a.emit, a.outputs[0], axes);
  const gk = keep ? g : unsqueeze(a.emit, g, axes);
  return [spreadToExtremum(a, a.inputs[0], y, gk, axes)];
};

/**
 * Max/Min over n broadcasting inputs: input j gets g·m_j/Σ_k m_k with m_j = 1[x_j = y] (broadcast to y's shape),
 * summed back to x_j's shape.
 */
const elementwiseExtremum: VjpRule = (a) => {
  const g = a.grads[0];
  if (!g) return [];
  if (a.inputs.length === 1) return [g];
  needEqual(a);
  const e = a.emit;
  const y = a.outputs[0];
  const masks = a.inputs.map((x) => hits(a, x, y)); // each [y's shape]
  const share = e.op1('Div', [g, e.op1('Sum', masks)]);
  return a.inputs.map((x, j) =>
    a.wants[j] ? unbroadcast(e, e.op1('Mul', [share, masks[j]]), a.info(x), a.info(y), `${where(a)} input ${j}`) : undefined,
  );
};

/** Sum/Mean: every input gets g (divided by n for Mean), summed back over the axes it was broadcast along. */
function nary(mean: boolean): VjpRule {
  return (a) => {
    const g = a.grads[0];
    if (!g) return [];
    const e = a.emit;
    const y = a.outputs[0];
    const gi = mean && a.inputs.length > 1 ? e.op1('Div', [g, e.scalar(a.inputs.length, dtypeOf(a, y))]) : g;
    return a.inputs.map((x, j) => (a.wants[j] ? unbroadcast(e, gi, a.info(x), a.info(y), `${where(a)} input ${j}`) : undefined));
  };
}

export const extremaRules = {
  ReduceMax: reduceExtremum,
  ReduceMin: reduceExtremum,
  /** The max over all spatial positions of each channel, ties split as in ReduceMax. */
  GlobalMaxPool: (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    needEqual(a);
    const rank = rankOf(a, a.inputs[0]);
    return [spreadToExtremum(a, a.inputs[0], a.outputs[0], g, Array.from({ length: rank - 2 }, (_, i) => 2 + i))];
  },
  Max: elementwiseExtremum,
  Min: elementwiseExtremum,
  Sum: nary(false),
  Mean: nary(true),
} satisfies Record<string, VjpRule>;
