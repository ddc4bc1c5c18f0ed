/**
 * VJP rules of convolution and pooling, in any spatial rank. Conv's input gradient is a ConvTranspose with the same
 * geometry; its weight gradient is a grouped Conv of the input with the output gradient (batch and channels swapped,
 * strides and dilations exchanged). MaxPool routes the gradient through the argmax indices: a scatter-add from
 * opset 16, before it per-window-offset copies spread back by a ConvTranspose.
 */
import { attr, getAttr } from '../../onnx/proto.js';
import { ONNX_DTYPE } from '../../onnx/tensor-proto.js';
import { sizeOf, Tensor } from '../../runtime/tensor.js';
import { floatConst, intAttr, intsAttr, reduceSum, slice } from '../helpers.js';
import type { VjpArgs, VjpRule } from '../types.js';

interface Geometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin..., end...] as ONNX orders them. */
  pads: number[];
  inSpatial: number[];
  outSpatial: number[];
}

function concrete(a: VjpArgs, v: string): number[] {
  const s = a.info(v).shape;
  if (!s || s.slice(2).some((d) => typeof d !== 'number')) {
    throw new Error(`${a.node.opType} '${a.node.name}': the spatial shape of '${v}' must be known to differentiate (got [${s?.join(', ') ?? '?'}])`);
  }
  return s.slice(2) as number[];
}

function geometry(a: VjpArgs, kernel: number[]): Geometry {
  const n = kernel.length;
  const strides = intsAttr(a.node, 'strides') ?? new Array<number>(n).fill(1);
  const dilations = intsAttr(a.node, 'dilations') ?? new Array<number>(n).fill(1);
  const inSpatial = concrete(a, a.inputs[0]);
  const outSpatial = concrete(a, a.outputs[0]);
  const autoPad = new TextDecoder().decode(getAttr(a.node, 'auto_pad')?.s ?? new Uint8Array());
  let pads = intsAttr(a.node, 'pads') ?? new Array<number>(2 * n).fill(0);
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = new Array<number>(2 * n).fill(0);
    for (let i = 0; i < n; i++) {
      const total = Math.max(0, (outSpatial[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - inSpatial[i]);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + n] = total - pads[i];
    }
  } else if (autoPad === 'VALID') pads = new Array<number>(2 * n).fill(0);
  return { kernel, strides, dilations, pads, inSpatial, outSpatial };
}

const ints = (name: string, v: number[]) => attr(name, { ints: v });

/** [N, C, ...spatial] → [N·C, 1, ...spatial]: every channel plane becomes a batch row of a one-channel map. */
function planes(a: VjpArgs, v: string, spatial: number[]): string {
  return a.emit.op1('Reshape', [v, a.emit.constant(Tensor.int64([-1, 1, ...spatial]))]);
}

/**
 * Adds per-window values back onto the input grid: a ConvTranspose of v [M, K, ...out] with w [K, 1, ...kernel]
 * over the pooling geometry gives [M, 1, ...in]. Pads crop, and output_padding restores, the input's extent.
 */
function spread(a: VjpArgs, geo: Geometry, v: string, w: string): string {
  const n = geo.kernel.length;
  const end: number[] = [];
  const outputPadding: number[] = [];
  for (let i = 0; i < n; i++) {
    const covered = (geo.outSpatial[i] - 1) * geo.strides[i] + (geo.kernel[i] - 1) * geo.dilations[i] + 1;
    const extra = covered - geo.pads[i] - geo.inSpatial[i];
    end.push(Math.max(0, extra));
    outputPadding.push(Math.max(0, -extra));
  }
  return a.emit.op1('ConvTranspose', [v, w], [
    ints('kernel_shape', geo.kernel), ints('strides', geo.strides), ints('dilations', geo.dilations),
    ints('pads', [...geo.pads.slice(0, n), ...end]), ints('output_padding', outputPadding),
  ]);
}

/**
 * MaxPool's gradient without a scatter-add (before opset 16), exact with overlapping windows and ties: recompute
 * the pooling's argmax indices, turn each into its offset k inside its window, and route the gradient through K
 * masked copies ([g ⊙ (offset = k)] for each k) that a ConvTranspose with one-hot kernels adds back at those taps.
 */
function maxPoolByOffsets(a: VjpArgs): string {
  const e = a.emit;
  if (e.opset < 8) throw new Error(`MaxPool '${a.node.name}': gradients need opset 8 or later (MaxPool with Indices)`);
  const X = a.inputs[0];
  const kernel = intsAttr(a.node, 'kernel_shape') ?? [];
  const geo = geometry(a, kernel);
  const n = kernel.length;
  const i64 = (v: number) => e.scalar(v, 'int64');
  const [, idx] = e.op('MaxPool', [X], a.node.attribute.filter((x) => x.name !== 'storage_order'), 2);
  // Indices are flat over the whole input; keep the position inside the (sample, channel) plane (no Mod before opset 10).
  const mod = (v: string, m: number) => e.op1('Sub', [v, e.op1('Mul', [e.op1('Div', [v, i64(m)]), i64(m)])]);
  const local = mod(idx, sizeOf(geo.inSpatial));
  let offset: string | undefined;
  for (let i = 0; i < n; i++) {
    const inner = sizeOf(geo.inSpatial.slice(i + 1));
    const coord = i === 0 ? e.op1('Div', [local, i64(inner)]) : mod(e.op1('Div', [local, i64(inner)]), geo.inSpatial[i]);
    // Where each window starts along axis i, broadcast over the other axes.
    const starts = Array.from({ length: geo.outSpatial[i] }, (_, o) => o * geo.strides[i] - geo.pads[i]);
    const shape = geo.outSpatial.map((d, j) => (j === i ? d : 1));
    const tap = e.op1('Div', [e.op1('Sub', [coord, e.constant(Tensor.int64(starts, [1, 1, ...shape]))]), i64(geo.dilations[i])]);
    offset = offset ? e.op1('Add', [e.op1('Mul', [offset, i64(kernel[i])]), tap]) : tap;
  }
  const K = sizeOf(kernel);
  const t = a.info(X).dtype ?? 'float32';
  // [N·C, K, ...out]: copy k holds the gradient of the windows whose max sits at offset k, zeros elsewhere.
  const taps = e.constant(Tensor.int64(Array.from({ length: K }, (_, k) => k), [1, K, ...geo.outSpatial.map(() => 1)]));
  const hit = e.op1('Cast', [e.op1('Equal', [planes(a, offset!, geo.outSpatial), taps])], [attr('to', { int: ONNX_DTYPE[t] })]);
  const routed = e.op1('Mul', [planes(a, a.grads[0]!, geo.outSpatial), hit]);
  // Kernel k is one-hot at tap k, so the transposed conv puts each copy's values at its own tap.
  const oneHot = new Array<number>(K * K).fill(0);
  for (let k = 0; k < K; k++) oneHot[k * K + k] = 1;
  const dX = spread(a, geo, routed, floatConst(e, oneHot, [K, 1, ...kernel], t));
  return e.op1('Reshape', [dX, e.op1('Shape', [X])]);
}

export const convRules = {
  Conv: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const [X, W, B] = a.inputs;
    const wShape = a.info(W).shape;
    if (!wShape || wShape.some((d) => typeof d !== 'number')) throw new Error(`Conv '${a.node.name}': the weight shape must be known`);
    const [outC, inPerGroup, ...kernel] = wShape as number[];
    const group = intAttr(a.node, 'group', 1);
    const geo = geometry(a, kernel);
    const n = kernel.length;
    let dX: string | undefined;
    const plain = group === 1 && e.opset >= 10 && geo.strides.every((v) => v === 1) && geo.dilations.every((v) => v === 1) && geo.pads.every((p, i) => p <= kernel[i % n] - 1);
    if (a.wants[0] && plain) {
      // Stride 1, no dilation or groups: the transposed conv is a conv with the kernel flipped and its in/out channels
      // swapped, padded by k − 1 − p (ONNX Runtime's Conv is about a third faster than its ConvTranspose here).
      const axes = Array.from({ length: n }, (_, i) => 2 + i);
      const swapped = e.op1('Transpose', [W], [ints('perm', [1, 0, ...axes])]);
      const flipped = e.op1('Slice', [swapped, e.constant(Tensor.int64(axes.map(() => -1))), e.constant(Tensor.int64(axes.map(() => -(2n ** 62n)))), e.constant(Tensor.int64(axes)), e.constant(Tensor.int64(axes.map(() => -1)))]);
      dX = e.op1('Conv', [g, flipped], [ints('kernel_shape', kernel), ints('pads', geo.pads.map((p, i) => kernel[i % n] - 1 - p))]);
    } else if (a.wants[0]) {
      // ConvTranspose of the gradient; output_padding restores the rows a strided conv dropped.
      const outputPadding = geo.inSpatial.map(
        (h, i) => h - ((geo.outSpatial[i] - 1) * geo.strides[i] + (kernel[i] - 1) * geo.dilations[i] + 1 - geo.pads[i] - geo.pads[i + n]),
      );
      dX = e.op1('ConvTranspose', [g, W], [
        ints('kernel_shape', kernel), ints('strides', geo.strides), ints('dilations', geo.dilations), ints('pads', geo.pads),
        ints('output_padding', outputPadding), attr('group', { int: group }),
      ]);
    }
    let dW: string | undefined;
    if (a.wants[1]) {
      const outPerGroup = outC / group;
      const sp = geo.inSpatial;
      const so = geo.outSpatial;
      const perm5 = (p: number[]) => ints('perm', [...p, ...Array.from({ length: n }, (_, i) => 3 + i)]);
      // X [N, G·Cg, ...] → [Cg, G·N, ...]: the input's channels become the batch, (group, sample) the channels.
      const x5 = e.op1('Reshape', [X, e.constant(Tensor.int64([-1, group, inPerGroup, ...sp]))]);
      const xT = e.op1('Reshape', [e.op1('Transpose', [x5], [perm5([2, 1, 0])]), e.constant(Tensor.int64([inPerGroup, -1, ...sp]))]);
      // g [N, G·Og, ...] → [G·Og, N, ...]: the gradient becomes the kernel, one output channel per weight row.
      const g5 = e.op1('Reshape', [g, e.constant(Tensor.int64([-1, group, outPerGroup, ...so]))]);
      const gT = e.op1('Reshape', [e.op1('Transpose', [g5], [perm5([1, 2, 0])]), e.constant(Tensor.int64([outC, -1, ...so]))]);
      const full = e.op1('Conv', [xT, gT], [
        ints('strides', geo.dilations), ints('dilations', geo.strides), ints('pads', geo.pads), attr('group', { int: group }),
      ]);
      // [Cg, G·Og, k'...] → crop to the kernel (a stride that does not divide leaves extra taps) → [G·Og, Cg, k...].
      const axes = Array.from({ length: n }, (_, i) => 2 + i);
      const cropped = slice(e, full, axes.map(() => 0), kernel, axes);
      dW = e.op1('Transpose', [cropped], [ints('perm', [1, 0, ...axes])]);
    }
    const dB = B && a.wants[2] ? reduceSum(e, g, [0, ...Array.from({ length: n }, (_, i) => 2 + i)], false) : undefined;
    return [dX, dW, dB];
  },
  MaxPool: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    if (e.opset < 16) return [maxPoolByOffsets(a)];
    const X = a.inputs[0];
    // Recompute the pooling with its argmax indices (flat over the whole input), then scatter-add the gradient there.
    const [, idx] = e.op('MaxPool', [X], a.node.attribute.filter((x) => x.name !== 'storage_order'), 2);
    const flat = (v: string) => e.op1('Reshape', [v, e.constant(Tensor.int64([-1]))]);
    const zeros = flat(e.op1('Sub', [X, X]));
    const summed = e.op1('ScatterElements', [zeros, flat(idx), flat(g)], [attr('axis', { int: 0 }), attr('reduction', { string: 'add' })]);
    return [e.op1('Reshape', [summed, e.op1('Shape', [X])])];
  },
  GlobalAveragePool: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const sp = concrete(a, a.inputs[0]);
    const count = sp.reduce((x, y) => x * y, 1);
    const scaled = e.op1('Div', [g, e.scalar(count, a.info(a.inputs[0]).dtype ?? 'float32')]);
    return [e.op1('Expand', [scaled, e.op1('Shape', [a.inputs[0]])])];
  },
} satisfies Record<string, VjpRule>;
