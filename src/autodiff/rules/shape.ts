/** VJP rules of ops that move values without changing them: reshapes, transposes, concatenation, slicing, gathering. */
import { attr } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { intAttr, intsAttr, reduceSum } from '../helpers.js';
import type { VjpArgs, VjpRule } from '../types.js';

/** The gradient of any reshape-like op: the output gradient reshaped to the input's runtime shape. */
const reshapeBack: VjpRule = (a) => {
  const g = a.grads[0];
  if (!g || !a.wants[0]) return [];
  return [a.emit.op1('Reshape', [g, a.emit.op1('Shape', [a.inputs[0]])])];
};

function rankOf(a: VjpArgs, v: string): number {
  const r = a.info(v).shape?.length;
  if (r === undefined) throw new Error(`${a.node.opType} '${a.node.name}': the rank of '${v}' is unknown`);
  return r;
}

export const shapeRules = {
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: (a) => {
    const g = a.grads[0]!;
    const rank = rankOf(a, a.inputs[0]);
    const perm = intsAttr(a.node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
    const inverse = new Array<number>(rank);
    perm.forEach((p, i) => (inverse[p] = i));
    return [a.emit.op1('Transpose', [g], [attr('perm', { ints: inverse })])];
  },
  Concat: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const rank = rankOf(a, a.outputs[0]);
    const axis = (intAttr(a.node, 'axis', 0) + rank) % rank;
    // Split the gradient by each input's runtime extent along the axis.
    const sizes = a.inputs.map((x) => e.op1('Slice', [e.op1('Shape', [x]), e.constant(Tensor.int64([axis])), e.constant(Tensor.int64([axis + 1]))]));
    const split = e.op1('Concat', sizes, [attr('axis', { int: 0 })]);
    if (e.opset < 13) throw new Error(`Concat '${a.node.name}': its gradient needs opset 13 (Split with a sizes input)`);
    const parts = e.op('Split', [g, split], [attr('axis', { int: axis })], a.inputs.length);
    return parts.map((p, j) => (a.wants[j] ? p : undefined));
  },
  Split: (a) => {
    const e = a.emit;
    const rank = rankOf(a, a.inputs[0]);
    const axis = (intAttr(a.node, 'axis', 0) + rank) % rank;
    // Outputs without a gradient contribute zeros of their own shape.
    const parts = a.outputs.map((o, j) => a.grads[j] ?? e.op1('Sub', [o, o]));
    return [a.wants[0] ? e.op1('Concat', parts, [attr('axis', { int: axis })]) : undefined];
  },
  Slice: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    if (e.opset < 11) throw new Error(`Slice '${a.node.name}': gradients need opset 11 or later (ScatterElements, Range)`);
    // Pad would need static extents; instead scatter the gradient into zeros through the same slice of an index grid.
    const x = a.inputs[0];
    const zeros = e.op1('Sub', [x, x]);
    const flatIdx = e.op1('Reshape', [e.op1('Range', [e.scalar(0, 'int64'), e.op1('Size', [x]), e.scalar(1, 'int64')]), e.op1('Shape', [x])]);
    const picked = e.op1('Slice', [flatIdx, ...a.inputs.slice(1)]);
    const flatZeros = e.op1('Reshape', [zeros, e.constant(Tensor.int64([-1]))]);
    const scattered = e.op1('ScatterElements', [flatZeros, e.op1('Reshape', [picked, e.constant(Tensor.int64([-1]))]), e.op1('Reshape', [g, e.constant(Tensor.int64([-1]))])], [attr('axis', { int: 0 })]);
    return [e.op1('Reshape', [scattered, e.op1('Shape', [x])])];
  },
  Gather: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    if (e.opset < 16) throw new Error(`Gather '${a.node.name}': gradients need opset 16 or later (ScatterND with reduction)`);
    const [data, indices] = a.inputs;
    const rank = rankOf(a, data);
    const axis = (intAttr(a.node, 'axis', 0) + rank) % rank;
    // Move the gathered axis first, scatter-add rows by index, move it back.
    const perm = [axis, ...Array.from({ length: rank }, (_, i) => i).filter((i) => i !== axis)];
    const inverse = new Array<number>(rank);
    perm.forEach((p, i) => (inverse[p] = i));
    const dataT = e.op1('Transpose', [data], [attr('perm', { ints: perm })]);
    const zeros = e.op1('Sub', [dataT, dataT]);
    const idxRank = a.info(indices).shape?.length ?? 0;
    const outRank = rankOf(a, a.outputs[0]);
    // g has the indices' axes at `axis`; bring them first to match ScatterND's updates layout.
    const gPerm = [
      ...Array.from({ length: idxRank }, (_, i) => axis + i),
      ...Array.from({ length: outRank }, (_, i) => i).filter((i) => i < axis || i >= axis + idxRank),
    ];
    const gT = e.op1('Transpose', [g], [attr('perm', { ints: gPerm })]);
    const idx = e.op1('Unsqueeze', [e.op1('Cast', [indices], [attr('to', { int: 7 })]), e.constant(Tensor.int64([-1]))]);
    // Negative indices count from the end.
    const n = e.op1('Slice', [e.op1('Shape', [data]), e.constant(Tensor.int64([axis])), e.constant(Tensor.int64([axis + 1]))]);
    const wrapped = e.op1('Where', [e.op1('Less', [idx, e.scalar(0, 'int64')]), e.op1('Add', [idx, n]), idx]);
    const summed = e.op1('ScatterND', [zeros, wrapped, gT], [attr('reduction', { string: 'add' })]);
    return [a.wants[0] ? e.op1('Transpose', [summed], [attr('perm', { ints: inverse })]) : undefined, undefined];
  },
  Expand: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const inRank = rankOf(a, a.inputs[0]);
    const outRank = rankOf(a, a.outputs[0]);
    // Sum over the added leading axes, then over the axes where the input holds a 1.
    const lead = Array.from({ length: outRank - inRank }, (_, i) => i);
    const shape = a.info(a.inputs[0]).shape;
    const ones = (shape ?? []).map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
    return [reduceSum(e, reduceSum(e, g, lead, false), ones, true), undefined];
  },
} satisfies Record<string, VjpRule>;
