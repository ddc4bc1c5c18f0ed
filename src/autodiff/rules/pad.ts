/**
 * VJP rules of ops that border or repeat a tensor: Pad and Tile. Constant-mode Pad copies x into the middle of its
 * output, so dx is the matching Slice of g (and zero rows where negative pads cropped x). Reflect, edge and wrap copy
 * each output row from a source row chosen per axis, y = x ×₁ P₁ ×₂ P₂ … with 0/1 selection matrices, so
 * dx = g ×₁ P₁ᵀ ×₂ P₂ᵀ …: every output row's gradient is added back to its source row. Tile repeats x, so dx sums g
 * over the repeats.
 */
import { attr } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';
import { intsAttr, reduceSum } from '../helpers.js';
import type { VjpArgs, VjpRule } from '../types.js';
import { alongAxis, concreteShape, dtypeOf, strAttr, where, zerosMatrix } from './spatial.js';
import { padZeros, slice } from '../helpers.js';

function constantInts(a: VjpArgs, name: string, what: string): number[] {
  const t = a.constant(name);
  if (!t) throw new Error(`${where(a)}: ${what} computed at run time cannot be differentiated through`);
  return t.toArray();
}

/** Begin and end pads per axis of x: from the attribute (opset < 11) or the constant input, on `axes` from opset 18. */
function padsPerAxis(a: VjpArgs, rank: number): { begin: number[]; end: number[] } {
  const raw = a.emit.opset < 11 ? (intsAttr(a.node, 'pads') ?? intsAttr(a.node, 'paddings')) : constantInts(a, a.inputs[1], 'pads');
  if (!raw) throw new Error(`${where(a)}: no pads`);
  const axes = a.inputs[3] ? constantInts(a, a.inputs[3], 'axes').map((x) => (x + rank) % rank) : Array.from({ length: rank }, (_, i) => i);
  const begin = new Array<number>(rank).fill(0);
  const end = new Array<number>(rank).fill(0);
  axes.forEach((ax, i) => ((begin[ax] = raw[i]), (end[ax] = raw[axes.length + i])));
  return { begin, end };
}

/** The source row of output row o along an axis of extent n padded by `before` rows, for a non-constant mode. */
function sourceRow(mode: string, o: number, before: number, n: number): number {
  const s = o - before;
  if (mode === 'edge') return Math.min(Math.max(s, 0), n - 1);
  if (mode === 'wrap') return ((s % n) + n) % n;
  // reflect: mirror about the first and last rows without repeating them, period 2(n − 1).
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  const r = ((s % period) + period) % period;
  return r < n ? r : period - r;
}

export const padRules = {
  Pad: (a) => {
    const g = a.grads[0];
    if (!g) return [];
    const e = a.emit;
    const X = a.inputs[0];
    const rank = a.info(X).shape?.length;
    if (rank === undefined) throw new Error(`${where(a)}: the rank of '${X}' is unknown`);
    const { begin, end } = padsPerAxis(a, rank);
    const mode = strAttr(a, 'mode', 'constant');
    const padded = Array.from({ length: rank }, (_, i) => i).filter((i) => begin[i] !== 0 || end[i] !== 0);
    if (mode === 'constant') {
      // Positive pads: slice them off; negative pads cropped x, so those rows of dx are zero.
      const cut = padded.filter((i) => begin[i] > 0 || end[i] > 0);
      const inner = slice(e, g, cut.map((i) => Math.max(begin[i], 0)), cut.map((i) => (end[i] > 0 ? -end[i] : null)), cut);
      const dX = a.wants[0] ? padZeros(e, inner, [...begin.map((p) => Math.max(-p, 0)), ...end.map((p) => Math.max(-p, 0))]) : undefined;
      // The fill value reaches every output outside x's copy: Σg − Σ(the copy).
      const value = a.inputs[2];
      let dValue: string | undefined;
      if (value && a.wants[2]) {
        const total = (v: string) => e.op1('ReduceSum', [v], [attr('keepdims', { int: 0 })]); // no axes: all
        dValue = e.op1('Reshape', [e.op1('Sub', [total(g), total(inner)]), e.op1('Shape', [value])]);
      }
      return [dX, undefined, dValue];
    }
    if (mode !== 'reflect' && mode !== 'edge' && mode !== 'wrap') throw new Error(`${where(a)}: no gradient for Pad mode '${mode}'`);
    if (!a.wants[0]) return [];
    const shape = concreteShape(a, X, (i) => padded.includes(i));
    let dX = g;
    for (const ax of padded) {
      const n = shape[ax];
      const out = n + begin[ax] + end[ax];
      const m = zerosMatrix(out, n); // [out][in]: row o sends its gradient to its source row
      for (let o = 0; o < out; o++) m[o][sourceRow(mode, o, begin[ax], n)] = 1;
      dX = alongAxis(e, dX, ax, rank, m, dtypeOf(a, X));
    }
    return [dX];
  },
  Tile: (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    const X = a.inputs[0];
    const reps = constantInts(a, a.inputs[1], 'repeats');
    const shape = a.info(X).shape;
    if (!shape) throw new Error(`${where(a)}: the shape of '${X}' is unknown`);
    // [… r·d …] → [… r, d …] (tiles are repeat-major), then sum over each r.
    const target: number[] = [];
    const summed: number[] = [];
    shape.forEach((d, i) => {
      if (reps[i] !== 1) {
        if (typeof d !== 'number') throw new Error(`${where(a)}: the extent of tiled axis ${i} of '${X}' must be known`);
        summed.push(target.length);
        target.push(reps[i]);
      }
      target.push(typeof d === 'number' ? d : -1);
    });
    if (summed.length === 0) return [g];
    if (target.filter((d) => d === -1).length > 1) throw new Error(`${where(a)}: more than one unknown extent in '${X}'`);
    const split = a.emit.op1('Reshape', [g, a.emit.constant(Tensor.int64(target))]);
    return [reduceSum(a.emit, split, summed, false), undefined];
  },
} satisfies Record<string, VjpRule>;
