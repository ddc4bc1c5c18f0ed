/**
 * VJP rule of ConvTranspose, in any spatial rank. ConvTranspose with weights W is the adjoint of the Conv with the same
 * W, strides, pads, dilations and groups (that Conv maps the output's shape to the input's): ⟨g, Convᵀ_W(x)⟩ =
 * ⟨Conv_W(g), x⟩. So the input gradient is that Conv applied to g, and the weight gradient is Conv's weight gradient
 * with the roles swapped: g plays Conv's input and x its output gradient.
 */
import { attr, getAttr } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { intAttr, intsAttr, reduceSum } from '../helpers.js';
import type { VjpArgs, VjpRule } from '../types.js';
import { concreteShape, ints, spatialShape, strAttr, where } from './spatial.js';
import { slice } from '../helpers.js';

/**
 * The explicit pads the forward used: from `pads`, or, when `output_shape` or SAME auto_pad is given, the total
 * (in−1)·s + output_padding + (k−1)·d + 1 − out split as the ONNX spec says (and ONNX Runtime 1.2x does; older
 * releases swapped it): the odd pad at the end for SAME_UPPER, at the start otherwise.
 */
function transposePads(a: VjpArgs, kernel: number[], strides: number[], dilations: number[], outPad: number[], inSp: number[], outSp: number[]): number[] {
  const n = kernel.length;
  const autoPad = strAttr(a, 'auto_pad', 'NOTSET');
  const explicit = getAttr(a.node, 'output_shape') !== undefined;
  if (!explicit && autoPad !== 'SAME_UPPER' && autoPad !== 'SAME_LOWER') {
    return autoPad === 'VALID' ? new Array<number>(2 * n).fill(0) : (intsAttr(a.node, 'pads') ?? new Array<number>(2 * n).fill(0));
  }
  const pads = new Array<number>(2 * n).fill(0);
  for (let i = 0; i < n; i++) {
    const target = explicit ? outSp[i] : inSp[i] * strides[i];
    const total = Math.max(0, (inSp[i] - 1) * strides[i] + outPad[i] + (kernel[i] - 1) * dilations[i] + 1 - target);
    pads[i] = autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : total - Math.floor(total / 2);
    pads[i + n] = total - pads[i];
  }
  return pads;
}

export const deconvRules = {
  ConvTranspose: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const [X, W, B] = a.inputs;
    const [inC, outPerGroup, ...kernel] = concreteShape(a, W);
    const group = intAttr(a.node, 'group', 1);
    const n = kernel.length;
    const inSp = spatialShape(a, X);
    const outSp = spatialShape(a, a.outputs[0]);
    const strides = intsAttr(a.node, 'strides') ?? new Array<number>(n).fill(1);
    const dilations = intsAttr(a.node, 'dilations') ?? new Array<number>(n).fill(1);
    const outPad = intsAttr(a.node, 'output_padding') ?? new Array<number>(n).fill(0);
    const pads = transposePads(a, kernel, strides, dilations, outPad, inSp, outSp);
    const spatialAxes = Array.from({ length: n }, (_, i) => 2 + i);
    let dX: string | undefined;
    if (a.wants[0]) {
      // Conv of g: its extent is in + ⌊output_padding/s⌋ (more if output_shape asked for a larger output); crop to in.
      const conv = e.op1('Conv', [g, W], [
        ints('kernel_shape', kernel), ints('strides', strides), ints('dilations', dilations), ints('pads', pads), attr('group', { int: group }),
      ]);
      const extent = inSp.map((len, i) => Math.floor((outSp[i] + pads[i] + pads[i + n] - (kernel[i] - 1) * dilations[i] - 1) / strides[i]) + 1);
      const over = spatialAxes.filter((_, i) => extent[i] !== inSp[i]);
      dX = slice(e, conv, over.map(() => 0), over.map((ax) => inSp[ax - 2]), over);
    }
    let dW: string | undefined;
    if (a.wants[1]) {
      if (inC % group) throw new Error(`${where(a)}: ${inC} input channels do not split into ${group} groups`);
      const inPerGroup = inC / group;
      const perm = (p: number[]) => ints('perm', [...p, ...spatialAxes.map((ax) => ax + 1)]);
      // g [N, G·Og, out…] → [Og, G·N, out…]: Conv's input, its channels become the batch (Og = W's dim 1).
      const g5 = e.op1('Reshape', [g, e.constant(Tensor.int64([-1, group, outPerGroup, ...outSp]))]);
      const gT = e.op1('Reshape', [e.op1('Transpose', [g5], [perm([2, 1, 0])]), e.constant(Tensor.int64([outPerGroup, -1, ...outSp]))]);
      // x [N, G·Ig, in…] → [G·Ig, N, in…]: Conv's output gradient becomes the kernel, one row per weight row.
      const x5 = e.op1('Reshape', [X, e.constant(Tensor.int64([-1, group, inPerGroup, ...inSp]))]);
      const xT = e.op1('Reshape', [e.op1('Transpose', [x5], [perm([1, 2, 0])]), e.constant(Tensor.int64([inC, -1, ...inSp]))]);
      // full[c, m, t] = Σ_{n,i} g[n, c, t·d + i·s − p] · x[n, m, i]: strides and dilations exchange roles.
      const full = e.op1('Conv', [gT, xT], [ints('strides', dilations), ints('dilations', strides), ints('pads', pads), attr('group', { int: group })]);
      // [Og, G·Ig, k'…] → crop to the kernel (output_padding ≥ d leaves extra taps) → [G·Ig, Og, k…] = W's shape.
      const cropped = slice(e, full, spatialAxes.map(() => 0), kernel, spatialAxes);
      dW = e.op1('Transpose', [cropped], [ints('perm', [1, 0, ...spatialAxes])]);
    }
    const dB = B && a.wants[2] ? reduceSum(e, g, [0, ...spatialAxes], false) : undefined;
    return [dX, dW, dB];
  },
} satisfies Record<string, VjpRule>;
