/** VJP rules of ops that move values without changing them: reshapes, transposes, concatenation, slicing, gathering. */
import { attr } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { floatConst, intAttr, intsAttr, padZeros, reduceSum, slice } from '../helpers.js';
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

/** Concat's gradient before Split takes sizes as an input: runtime-bounded Slices from opset 10, a static Split before. */
function concatBefore13(a: VjpArgs, axis: number): string[] {
  const e = a.emit;
  const g = a.grads[0]!;
  if (e.opset >= 10) {
    const at = (v: number) => e.constant(Tensor.int64([v]));
    let start = at(0);
    return a.inputs.map((x) => {
      const end = e.op1('Add', [start, e.op1('Slice', [e.op1('Shape', [x]), at(axis), at(axis + 1)])]);
      const part = e.op1('Slice', [g, start, end, at(axis)]);
      start = end;
      return part;
    });
  }
  // Opset 9 slices only by attributes: the extents along the axis are taken from the probed shapes.
  const sizes = a.inputs.map((x) => a.info(x).shape?.[axis]);
  if (!sizes.every((d) => typeof d === 'number')) {
    throw new Error(`Concat '${a.node.name}': at opset ${e.opset} its gradient needs each input's extent along axis ${axis} (got ${sizes.map((d) => d ?? '?').join(', ')})`);
  }
  return e.op('Split', [g], [attr('axis', { int: axis }), attr('split', { ints: sizes as number[] })], a.inputs.length);
}

/** Slice's gradient before ScatterElements and Range (opset < 11): the gradient zero-padded back to the input's extent. */
function padBack(a: VjpArgs): string {
  const e = a.emit;
  const x = a.inputs[0];
  const shape = a.info(x).shape;
  const rank = rankOf(a, x);
  // Opset 10 gives the bounds as inputs (constants here), opset 9 as attributes.
  const read = (attrName: string, j: number): number[] | undefined => {
    if (e.opset < 10) return intsAttr(a.node, attrName);
    if (!a.inputs[j]) return undefined;
    const t = a.constant(a.inputs[j]);
    if (!t) throw new Error(`Slice '${a.node.name}': at opset ${e.opset} its gradient needs constant ${attrName}`);
    return t.toArray().map(Number);
  };
  const starts = read('starts', 1)!;
  const ends = read('ends', 2)!;
  const axes = read('axes', 3) ?? starts.map((_, i) => i);
  const steps = read('steps', 4) ?? starts.map(() => 1);
  if (steps.some((s) => s !== 1)) throw new Error(`Slice '${a.node.name}': before opset 11 only unit steps can be differentiated (got ${steps.join(', ')})`);
  const pads = new Array<number>(2 * rank).fill(0);
  axes.forEach((ax0, i) => {
    const ax = (ax0 + rank) % rank;
    const dim = shape?.[ax];
    if (typeof dim !== 'number') throw new Error(`Slice '${a.node.name}': the extent of axis ${ax} of '${x}' must be known to differentiate`);
    const clamp = (v: number) => Math.min(dim, Math.max(0, v < 0 ? v + dim : v));
    const begin = clamp(starts[i]);
    pads[ax] = begin;
    pads[ax + rank] = dim - Math.max(begin, clamp(ends[i]));
  });
  return padZeros(e, a.grads[0]!, pads);
}

/**
 * Gather's gradient without a scatter-add (before opset 16), exact with repeated indices: the gathered rows'
 * gradients summed per index as a product with the indices' one-hot matrix, dData_axis = OneHot(idx)ᵀ · g.
 */
function gatherByOneHot(a: VjpArgs): string {
  const e = a.emit;
  const g = a.grads[0]!;
  const [data, indices] = a.inputs;
  const rank = rankOf(a, data);
  const axis = (intAttr(a.node, 'axis', 0) + rank) % rank;
  const idxRank = a.info(indices).shape?.length;
  if (idxRank === undefined) throw new Error(`Gather '${a.node.name}': the rank of the indices '${indices}' is unknown`);
  const outRank = rankOf(a, a.outputs[0]);
  const perm = [axis, ...Array.from({ length: rank }, (_, i) => i).filter((i) => i !== axis)];
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => (inverse[p] = i));
  const n = slice(e, e.op1('Shape', [data]), [axis], [axis + 1], [0]);
  // OneHot counts negative indices from the end only from opset 11.
  const idx = e.op1('Reshape', [e.op1('Cast', [indices], [attr('to', { int: 7 })]), e.constant(Tensor.int64([-1]))]);
  const wrapped = e.op1('Where', [e.op1('Less', [idx, e.scalar(0, 'int64')]), e.op1('Add', [idx, n]), idx]);
  const t = a.info(data).dtype ?? 'float32';
  const hot = e.op1('OneHot', [wrapped, n, floatConst(e, [0, 1], [2], t)]); // [I, n]
  // g [..., idx axes at `axis`, ...] → [I, R]: index positions first, the data's other axes flattened.
  const gPerm = [
    ...Array.from({ length: idxRank }, (_, i) => axis + i),
    ...Array.from({ length: outRank }, (_, i) => i).filter((i) => i < axis || i >= axis + idxRank),
  ];
  const gFlat = e.op1('Flatten', [e.op1('Transpose', [g], [attr('perm', { ints: gPerm })])], [attr('axis', { int: idxRank })]);
  const summed = e.op1('MatMul', [e.op1('Transpose', [hot], [attr('perm', { ints: [1, 0] })]), gFlat]); // [n, R]
  const dataT = e.op1('Transpose', [data], [attr('perm', { ints: perm })]);
  return e.op1('Transpose', [e.op1('Reshape', [summed, e.op1('Shape', [dataT])])], [attr('perm', { ints: inverse })]);
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
    if (e.opset < 13) return concatBefore13(a, axis).map((p, j) => (a.wants[j] ? p : undefined));
    // Split the gradient by each input's runtime extent along the axis.
    const sizes = a.inputs.map((x) => e.op1('Slice', [e.op1('Shape', [x]), e.constant(Tensor.int64([axis])), e.constant(Tensor.int64([axis + 1]))]));
    const split = e.op1('Concat', sizes, [attr('axis', { int: 0 })]);
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
    if (e.opset < 11) return [padBack(a)];
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
    if (e.opset < 16) return [a.wants[0] ? gatherByOneHot(a) : undefined, undefined];
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
  /** out[…i…] = data[…idx[…i…]…] along `axis`: the gradient scatter-adds back (repeated indices accumulate). */
  GatherElements: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    if (!a.wants[0]) return [undefined, undefined];
    if (e.opset < 16) throw new Error(`GatherElements '${a.node.name}': its gradient needs ScatterElements with reduction (opset 16), the graph has opset ${e.opset}`);
    const [data, indices] = a.inputs;
    const rank = rankOf(a, data);
    const axis = (intAttr(a.node, 'axis', 0) + rank) % rank;
    const idx = e.op1('Cast', [indices], [attr('to', { int: 7 })]);
    const n = e.op1('Slice', [e.op1('Shape', [data]), e.constant(Tensor.int64([axis])), e.constant(Tensor.int64([axis + 1]))]);
    const wrapped = e.op1('Where', [e.op1('Less', [idx, e.scalar(0, 'int64')]), e.op1('Add', [idx, n]), idx]);
    const zeros = e.op1('Sub', [data, data]);
    return [e.op1('ScatterElements', [zeros, wrapped, g], [attr('axis', { int: axis }), attr('reduction', { string: 'add' })]), undefined];
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
