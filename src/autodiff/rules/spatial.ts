/**
 * Shared pieces of the pooling, resampling and padding rules: concrete shapes from the probe, float constants in a
 * value's dtype, version-switched Slice, and linear maps along one axis. Resize, Pad (non-constant modes) and the
 * pooling counts are separable per axis, so their gradients are products of small host-built matrices: for a forward
 * map y = x ×ₐ A (A of shape [in, out] along axis a), the vector-Jacobian product is g ×ₐ Aᵀ.
 */
import { attr, getAttr } from '../../onnx/proto.js';
import type { DType } from '../../runtime/tensor.js';
import type { Emitter, VjpArgs } from '../types.js';
import { floatConst } from '../helpers.js';

export const ints = (name: string, v: readonly number[]) => attr(name, { ints: v });

/** The dtype of a forward value (float32 when the probe does not say). */
export const dtypeOf = (a: VjpArgs, v: string) => (a.info(v).dtype ?? 'float32') as DType;

/** `Op 'node'`, the prefix of every error a rule throws. */
export const where = (a: VjpArgs) => `${a.node.opType} '${a.node.name || a.node.output[0]}'`;

export function strAttr(a: VjpArgs, name: string, fallback: string): string {
  const s = getAttr(a.node, name)?.s;
  return s && s.length ? new TextDecoder().decode(s) : fallback;
}

/** The full shape of `v` as numbers; throws naming the op, node and value if any dim in `need` is unknown. */
export function concreteShape(a: VjpArgs, v: string, need: (axis: number) => boolean = () => true): number[] {
  const s = a.info(v).shape;
  if (!s || s.some((d, i) => need(i) && typeof d !== 'number')) {
    throw new Error(`${where(a)}: the shape of '${v}' must be known to differentiate (got [${s?.map((d) => d ?? '?').join(', ') ?? '?'}])`);
  }
  return s.map((d) => (typeof d === 'number' ? d : -1));
}

/** The spatial extents (axes 2…) of an NC… value, which must be concrete. */
export const spatialShape = (a: VjpArgs, v: string) => concreteShape(a, v, (i) => i >= 2).slice(2);


/**
 * Contracts axis `axis` of a rank-`rank` value with `m` ([from][to], host numbers): y[…, t, …] = Σ_f x[…, f, …]·m[f][t].
 * One MatMul on the last axis, with the axis swapped there and back.
 */
export function alongAxis(e: Emitter, x: string, axis: number, rank: number, m: readonly (readonly number[])[], t: DType): string {
  const from = m.length;
  const to = m[0]?.length ?? 0;
  const flat = new Float64Array(from * to);
  m.forEach((row, f) => row.forEach((v, j) => (flat[f * to + j] = v)));
  const mat = floatConst(e, flat, [from, to], t); // [from, to]
  if (axis === rank - 1) return e.op1('MatMul', [x, mat]);
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[axis], perm[rank - 1]] = [perm[rank - 1], perm[axis]];
  const moved = e.op1('Transpose', [x], [ints('perm', perm)]); // the axis last
  return e.op1('Transpose', [e.op1('MatMul', [moved, mat])], [ints('perm', perm)]);
}

/** An [n][m] matrix of zeros. */
export const zerosMatrix = (n: number, m: number) => Array.from({ length: n }, () => new Array<number>(m).fill(0));

/** True when `m` is square with ones on the diagonal and zeros elsewhere (an axis left unchanged). */
export const isIdentity = (m: readonly (readonly number[])[]) =>
  m.length === (m[0]?.length ?? 0) && m.every((row, i) => row.every((v, j) => v === (i === j ? 1 : 0)));

/** Kernel geometry of a pooling or convolution node: strides, dilations and explicit pads, auto_pad resolved. */
export interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin…, end…] as ONNX orders them. */
  pads: number[];
}

/** Resolves auto_pad the way ONNX Runtime does for Conv and pooling (SAME_UPPER puts the odd pad at the end). */
export function forwardWindow(a: VjpArgs, kernel: number[], inSp: number[], outSp: number[]): Window {
  const n = kernel.length;
  const get = (name: string) => getAttr(a.node, name)?.ints.map(Number);
  const strides = get('strides') ?? new Array<number>(n).fill(1);
  const dilations = get('dilations') ?? new Array<number>(n).fill(1);
  const autoPad = strAttr(a, 'auto_pad', 'NOTSET');
  let pads = get('pads') ?? new Array<number>(2 * n).fill(0);
  if (autoPad === 'VALID') pads = new Array<number>(2 * n).fill(0);
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    for (let i = 0; i < n; i++) {
      const total = Math.max(0, (outSp[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - inSp[i]);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + n] = total - pads[i];
    }
  }
  return { kernel, strides, dilations, pads };
}
