/** VJP rules of normalising and reducing ops: Softmax, LogSoftmax, LayerNormalization, BatchNormalization, ReduceMean/Sum. */
import { floatAttr, intAttr, intsAttr, reduceMean, reduceSum, unsqueeze } from '../helpers.js';
import type { VjpArgs, VjpRule } from '../types.js';

function rankOf(a: VjpArgs, v: string): number {
  const r = a.info(v).shape?.length;
  if (r === undefined) throw new Error(`${a.node.opType} '${a.node.name}': the rank of '${v}' is unknown`);
  return r;
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** Softmax normalises over one axis from opset 13, over all axes from `axis` on before (default 1). */
function softmaxAxes(a: VjpArgs): number[] {
  const rank = rankOf(a, a.inputs[0]);
  const old = a.emit.opset < 13;
  const axis = (intAttr(a.node, 'axis', old ? 1 : -1) + rank) % rank;
  return old ? range(axis, rank) : [axis];
}

/** The axes a Reduce* node reduces: from the attribute, or the second input (a constant), or all. */
function reducedAxes(a: VjpArgs): number[] {
  const rank = rankOf(a, a.inputs[0]);
  let axes = intsAttr(a.node, 'axes');
  if (!axes && a.inputs[1]) {
    const t = a.constant(a.inputs[1]);
    if (!t) throw new Error(`${a.node.opType} '${a.node.name}': axes computed at run time cannot be differentiated through`);
    axes = t.toArray();
  }
  // No axes: all of them, unless noop_with_empty_axes makes the op the identity.
  if (!axes || axes.length === 0) axes = intAttr(a.node, 'noop_with_empty_axes', 0) ? [] : range(0, rank);
  return axes.map((x) => (x + rank) % rank).sort((x, y) => x - y);
}

export const normalizeRules = {
  Softmax: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const y = a.outputs[0];
    const dot = reduceSum(e, e.op1('Mul', [g, y]), softmaxAxes(a), true);
    return [e.op1('Mul', [y, e.op1('Sub', [g, dot])])];
  },
  LogSoftmax: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const total = reduceSum(e, g, softmaxAxes(a), true);
    return [e.op1('Sub', [g, e.op1('Mul', [e.op1('Exp', [a.outputs[0]]), total])])];
  },
  LayerNormalization: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const [X, scale, bias] = a.inputs;
    const rank = rankOf(a, X);
    const axis = (intAttr(a.node, 'axis', -1) + rank) % rank;
    const norm = range(axis, rank);
    const outer = range(0, axis);
    const t = a.info(X).dtype ?? 'float32';
    // Recompute the statistics: x̂ = (x − μ)·r with r = 1/√(σ² + ε).
    const centered = e.op1('Sub', [X, reduceMean(e, X, norm, true)]);
    const variance = reduceMean(e, e.op1('Mul', [centered, centered]), norm, true);
    const rstd = e.op1('Reciprocal', [e.op1('Sqrt', [e.op1('Add', [variance, e.scalar(floatAttr(a.node, 'epsilon', 1e-5), t)])])]);
    const xhat = e.op1('Mul', [centered, rstd]);
    const dxhat = e.op1('Mul', [g, scale]);
    let dX: string | undefined;
    if (a.wants[0]) {
      // dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), means over the normalised axes.
      const m1 = reduceMean(e, dxhat, norm, true);
      const m2 = reduceMean(e, e.op1('Mul', [dxhat, xhat]), norm, true);
      dX = e.op1('Mul', [rstd, e.op1('Sub', [e.op1('Sub', [dxhat, m1]), e.op1('Mul', [xhat, m2])])]);
    }
    const dScale = a.wants[1] ? reduceSum(e, e.op1('Mul', [g, xhat]), outer, false) : undefined;
    const dBias = bias && a.wants[2] ? reduceSum(e, g, outer, false) : undefined;
    return [dX, dScale, dBias];
  },
  /** Inference mode: the statistics are constants, so the op is a per-channel affine map. */
  BatchNormalization: (a) => {
    const g = a.grads[0]!;
    const e = a.emit;
    const [X, scale, , mean, variance] = a.inputs;
    const rank = rankOf(a, X);
    const t = a.info(X).dtype ?? 'float32';
    const perChannel = (v: string) => unsqueeze(e, v, range(1, rank - 1)); // [C] → [C, 1, 1]
    const rstd = e.op1('Reciprocal', [e.op1('Sqrt', [e.op1('Add', [variance, e.scalar(floatAttr(a.node, 'epsilon', 1e-5), t)])])]);
    const dX = a.wants[0] ? e.op1('Mul', [g, perChannel(e.op1('Mul', [scale, rstd]))]) : undefined;
    const axes = [0, ...range(2, rank)];
    const xhat = e.op1('Mul', [e.op1('Sub', [X, perChannel(mean)]), perChannel(rstd)]);
    const dScale = a.wants[1] ? reduceSum(e, e.op1('Mul', [g, xhat]), axes, false) : undefined;
    const dBias = a.wants[2] ? reduceSum(e, g, axes, false) : undefined;
    return [dX, dScale, dBias];
  },
  ReduceSum: (a) => {
    const e = a.emit;
    const axes = reducedAxes(a);
    const g = intAttr(a.node, 'keepdims', 1) ? a.grads[0]! : unsqueeze(e, a.grads[0]!, axes);
    return [e.op1('Expand', [g, e.op1('Shape', [a.inputs[0]])])];
  },
  ReduceMean: (a) => {
    const e = a.emit;
    const axes = reducedAxes(a);
    const shape = a.info(a.inputs[0]).shape ?? [];
    const dims = axes.map((i) => shape[i]);
    const g0 = intAttr(a.node, 'keepdims', 1) ? a.grads[0]! : unsqueeze(e, a.grads[0]!, axes);
    if (!dims.every((d) => typeof d === 'number')) throw new Error(`ReduceMean '${a.node.name}': the reduced dims must be known`);
    const count = e.scalar((dims as number[]).reduce((x, y) => x * y, 1), a.info(a.inputs[0]).dtype ?? 'float32');
    return [e.op1('Expand', [e.op1('Div', [g0, count]), e.op1('Shape', [a.inputs[0]])])];
  },
} satisfies Record<string, VjpRule>;
