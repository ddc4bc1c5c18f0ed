/** VJP rules of the linear ops: Gemm and (batched, broadcasting) MatMul. */
import { attr } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { floatAttr, intAttr, reduceSum, unbroadcast } from '../helpers.js';
import type { VjpArgs, VjpRule } from '../types.js';

const flag = (v: boolean) => ({ int: v ? 1 : 0 });

/** Swaps the last two axes of a value of rank `rank`. */
function swapLast(a: VjpArgs, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return a.emit.op1('Transpose', [x], [attr('perm', { ints: perm })]);
}

export const linearRules = {
  /** Y = α·A'B' + β·C with A' = Aᵀ if transA, B' = Bᵀ if transB. */
  Gemm: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const [A, B, C] = a.inputs;
    const tA = intAttr(a.node, 'transA', 0) === 1;
    const tB = intAttr(a.node, 'transB', 0) === 1;
    const alpha = attr('alpha', { float: floatAttr(a.node, 'alpha', 1) });
    // dA' = α·g·B'ᵀ, dB' = α·A'ᵀ·g; each written as one Gemm with the transposes folded into its flags.
    const dA = !a.wants[0] ? undefined
      : tA ? e.op1('Gemm', [B, g], [alpha, attr('transA', flag(tB)), attr('transB', flag(true))])
      : e.op1('Gemm', [g, B], [alpha, attr('transA', flag(false)), attr('transB', flag(!tB))]);
    const dB = !a.wants[1] ? undefined
      : tB ? e.op1('Gemm', [g, A], [alpha, attr('transA', flag(true)), attr('transB', flag(tA))])
      : e.op1('Gemm', [A, g], [alpha, attr('transA', flag(!tA)), attr('transB', flag(false))]);
    let dC: string | undefined;
    if (C && a.wants[2]) {
      const beta = floatAttr(a.node, 'beta', 1);
      const scaled = beta === 1 ? g : e.op1('Mul', [g, e.scalar(beta, a.info(C).dtype ?? 'float32')]);
      dC = unbroadcast(e, scaled, a.info(C), a.info(a.outputs[0]), `Gemm '${a.node.name}' bias`);
    }
    return [dA, dB, dC];
  },
  /** numpy matmul semantics: 1-D operands are promoted (and the added axis dropped), batch axes broadcast. */
  MatMul: (a) => {
    const e = a.emit;
    const [A, B] = a.inputs;
    const ra = a.info(A).shape?.length;
    const rb = a.info(B).shape?.length;
    if (ra === undefined || rb === undefined) throw new Error(`MatMul '${a.node.name}': operand ranks are unknown`);
    let g = a.grads[0]!;
    // Promote 1-D operands to matrices so one formula serves: A [K] → [1, K], B [K] → [K, 1].
    const A2 = ra === 1 ? e.op1('Unsqueeze', [A, ...unsqueezeAxes(a, [0])], unsqueezeAttr(a, [0])) : A;
    const B2 = rb === 1 ? e.op1('Unsqueeze', [B, ...unsqueezeAxes(a, [1])], unsqueezeAttr(a, [1])) : B;
    const rg = Math.max(ra, rb, 2);
    if (ra === 1) g = e.op1('Unsqueeze', [g, ...unsqueezeAxes(a, [rg - 2])], unsqueezeAttr(a, [rg - 2]));
    if (rb === 1) g = e.op1('Unsqueeze', [g, ...unsqueezeAxes(a, [rg - 1])], unsqueezeAttr(a, [rg - 1]));
    const out = (d: string, rank: number, target: number, which: 'A' | 'B'): string => {
      // Sum the broadcast batch axes away, then drop the promoted axis of a 1-D operand.
      const lead = Array.from({ length: rg - Math.max(rank, 2) }, (_, i) => i);
      let r = reduceSum(e, d, lead, false);
      const shape = a.info(which === 'A' ? A : B).shape!;
      const batch = shape.slice(0, -2);
      const kept = batch.map((dim, i) => (dim === 1 ? i : -1)).filter((i) => i >= 0);
      if (target >= 2 && kept.length) r = reduceSum(e, r, kept, true);
      if (target === 1) r = e.op1('Reshape', [r, e.op1('Shape', [which === 'A' ? A : B])]);
      return r;
    };
    const dA = a.wants[0] ? out(e.op1('MatMul', [g, swapLast(a, B2, Math.max(rb, 2))]), ra, ra, 'A') : undefined;
    // A [..., K] times a matrix B [K, M] (a dense layer over many positions): dB is one GEMM over the flattened
    // positions, not a batched product summed afterwards (which would hold a [..., K, M] intermediate).
    const flatB = rb === 2 && ra > 2;
    const dB = !a.wants[1] ? undefined
      : flatB ? e.op1('Gemm', [e.op1('Flatten', [A], [attr('axis', { int: ra - 1 })]), e.op1('Flatten', [g], [attr('axis', { int: ra - 1 })])], [attr('transA', flag(true))])
      : out(e.op1('MatMul', [swapLast(a, A2, Math.max(ra, 2)), g]), rb, rb, 'B');
    return [dA, dB];
  },
} satisfies Record<string, VjpRule>;

/** Unsqueeze takes axes as an input from opset 13, as an attribute before. */
function unsqueezeAxes(a: VjpArgs, axes: number[]): string[] {
  return a.emit.opset >= 13 ? [a.emit.constant(Tensor.int64(axes))] : [];
}
function unsqueezeAttr(a: VjpArgs, axes: number[]) {
  return a.emit.opset >= 13 ? [] : [attr('axes', { ints: axes })];
}
