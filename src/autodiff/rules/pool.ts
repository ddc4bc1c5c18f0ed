/**
 * VJP rule of AveragePool, in any spatial rank. The forward is y(o) = Σ_{i ∈ W(o)} x(i) / d(o) over the valid taps
 * W(o) of window o, so the input gradient spreads g(o)/d(o) back over each window: a ConvTranspose of the scaled
 * gradient with a ones kernel, one channel at a time (batch and channels folded together, the same as group = C).
 */
import { attr } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { intAttr, intsAttr } from '../helpers.js';
import type { VjpRule } from '../types.js';
import { dtypeOf, forwardWindow, ints, spatialShape, where } from './spatial.js';
import { floatConst } from '../helpers.js';

/** Per axis, how many taps of window o fall inside the input: #{k < K : 0 ≤ o·s − p + k·d < len}. */
function validTaps(len: number, out: number, k: number, s: number, d: number, p: number): number[] {
  return Array.from({ length: out }, (_, o) => {
    let n = 0;
    for (let j = 0; j < k; j++) {
      const i = o * s - p + j * d;
      if (i >= 0 && i < len) n++;
    }
    return n;
  });
}

/** The outer product of per-axis vectors, flattened row-major. */
function outer(vs: number[][]): number[] {
  return vs.reduce<number[]>((acc, v) => acc.flatMap((x) => v.map((y) => x * y)), [1]);
}

export const poolRules = {
  AveragePool: (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    const e = a.emit;
    const X = a.inputs[0];
    const t = dtypeOf(a, X);
    const inSp = spatialShape(a, X);
    const outSp = spatialShape(a, a.outputs[0]);
    const kernel = intsAttr(a.node, 'kernel_shape');
    if (!kernel) throw new Error(`${where(a)}: kernel_shape is required`);
    const n = kernel.length;
    const w = forwardWindow(a, kernel, inSp, outSp);
    const taps = inSp.map((len, i) => validTaps(len, outSp[i], kernel[i], w.strides[i], w.dilations[i], w.pads[i]));
    const inv = outer(taps).map((c) => (c > 0 ? 1 / c : 0));
    let scale = floatConst(e, inv, [1, 1, ...outSp], t); // 1/n(o), [1, 1, out…]
    if (intAttr(a.node, 'count_include_pad', 0)) {
      // The divisor counts pads (and, with ceil_mode, a runtime-specific border): take it from the runtime itself.
      // AveragePool(ones) = n(o)/d(o), so AveragePool(ones)/n(o) = 1/d(o) exactly as the forward divides.
      const ones = floatConst(e, new Array<number>(inSp.reduce((p, q) => p * q, 1)).fill(1), [1, 1, ...inSp], t);
      scale = e.op1('Mul', [e.op1('AveragePool', [ones], a.node.attribute), scale]);
    }
    // [N, C, out…] → [N·C, 1, out…]: every channel is spread by the same single-channel kernel.
    const flat = e.op1('Reshape', [e.op1('Mul', [g, scale]), e.constant(Tensor.int64([-1, 1, ...outSp]))]);
    // ConvTranspose's extent is (out−1)·s + (k−1)·d + 1 − pads; pick the end pad (or output_padding) that lands on the
    // input extent, since with ceil_mode the last window may overhang the end pad and without it trailing rows go unused.
    const endPads: number[] = [];
    const outputPadding: number[] = [];
    for (let i = 0; i < n; i++) {
      const full = (outSp[i] - 1) * w.strides[i] + (kernel[i] - 1) * w.dilations[i] + 1 - w.pads[i];
      endPads.push(Math.max(0, full - inSp[i]));
      outputPadding.push(Math.max(0, inSp[i] - full));
    }
    const spread = e.op1('ConvTranspose', [flat, floatConst(e, new Array<number>(kernel.reduce((p, q) => p * q, 1)).fill(1), [1, 1, ...kernel], t)], [
      ints('kernel_shape', kernel), ints('strides', w.strides), ints('dilations', w.dilations),
      ints('pads', [...w.pads.slice(0, n), ...endPads]), ints('output_padding', outputPadding), attr('group', { int: 1 }),
    ]); // [N·C, 1, in…]
    return [e.op1('Reshape', [spread, e.op1('Shape', [X])])];
  },
} satisfies Record<string, VjpRule>;
