/**
 * VJP rule of Resize (nearest, linear, cubic): every mode is separable, y = x ×₁ A₁ ×₂ A₂ …, with Aₐ[o][i] the weight
 * of input row i in output row o along axis a. Aₐ is rebuilt on the host from the concrete extents exactly as ONNX
 * Runtime computes it (upsamplebase.h, upsample.cc: coordinate transform and weights in float32), and the gradient
 * applies the transposes, dx = g ×₁ A₁ᵀ ×₂ A₂ᵀ …: for nearest a scatter-add of g into the source pixels, for linear
 * and cubic the transposed interpolation.
 */
import type { Dim } from '../../onnx/proto.js';
import { floatAttr, intAttr, intsAttr } from '../helpers.js';
import type { VjpArgs, VjpRule } from '../types.js';
import { alongAxis, dtypeOf, strAttr, where, zerosMatrix } from './spatial.js';

const f = Math.fround;

/** The source coordinate of output index o along one axis, in float32 as the runtime computes it. */
function sourceCoordinate(mode: string, o: number, scale: number, outLen: number, inLen: number, roi: [number, number]): number {
  switch (mode) {
    case 'asymmetric':
      return f(o / scale);
    case 'pytorch_half_pixel':
      return outLen > 1 ? f(f(f(o + 0.5) / scale) - 0.5) : 0;
    case 'tf_half_pixel_for_nn':
      return f(f(o + 0.5) / scale);
    case 'align_corners':
      return outLen === 1 ? 0 : f(f(o * (inLen - 1)) / (outLen - 1));
    case 'tf_crop_and_resize': {
      const [s, e] = roi;
      return outLen > 1 ? f(f(s * (inLen - 1)) + f(f(f(o * f(e - s)) * (inLen - 1)) / (outLen - 1))) : f(0.5 * f(s + e) * (inLen - 1));
    }
    case 'half_pixel_symmetric': {
      const adjustment = f(outLen / f(scale * inLen));
      const offset = f(f(inLen / 2) * f(1 - adjustment));
      return f(offset + (o + 0.5) / scale - 0.5);
    }
    case 'half_pixel':
      return f(f(f(o + 0.5) / scale) - 0.5);
    default:
      throw new Error(`coordinate_transformation_mode '${mode}' is not known`);
  }
}

/** std::round: halves away from zero. */
const roundAway = (x: number) => Math.sign(x) * Math.round(Math.abs(x));

function nearestIndex(mode: string, x: number, downsampling: boolean): number {
  switch (mode) {
    case 'simple': // Resize-10
      return downsampling ? Math.ceil(x) : Math.trunc(x);
    case 'round_prefer_ceil':
      return roundAway(x);
    case 'floor':
      return Math.floor(x);
    case 'ceil':
      return Math.ceil(x);
    default: // round_prefer_floor
      return x === Math.trunc(x) + 0.5 ? Math.floor(x) : roundAway(x);
  }
}

/** Keys' cubic convolution weights for taps at offsets −1, 0, 1, 2 from ⌊x⌋, s = x − ⌊x⌋. */
function cubicWeights(s: number, A: number): number[] {
  const far = (t: number) => f(((A * t - 5 * A) * t + 8 * A) * t - 4 * A);
  const near = (t: number) => f(((A + 2) * t - (A + 3)) * t * t + 1);
  return [far(s + 1), near(s), near(1 - s), far(2 - s)];
}

interface AxisSpec {
  mode: string;
  coord: string;
  nearest: string;
  cubicA: number;
  excludeOutside: boolean;
}

/** A[o][i] along one axis ([out][in]); rows of extrapolated outputs stay zero (the output is a constant there). */
function interpolationMatrix(p: AxisSpec, inLen: number, outLen: number, scale: number, roi: [number, number]): number[][] {
  const m = zerosMatrix(outLen, inLen);
  const clamp = (i: number) => Math.min(Math.max(i, 0), inLen - 1);
  for (let o = 0; o < outLen; o++) {
    const x = sourceCoordinate(p.coord, o, scale, outLen, inLen, roi);
    if (p.coord === 'tf_crop_and_resize' && (x < 0 || x > inLen - 1)) continue;
    if (p.mode === 'nearest') {
      m[o][clamp(nearestIndex(p.nearest, x, scale < 1))] = 1;
    } else if (p.mode === 'linear') {
      const v = f(Math.min(Math.max(x, 0), inLen - 1));
      const x1 = Math.min(Math.trunc(v), inLen - 1);
      const x2 = Math.min(x1 + 1, inLen - 1);
      const [d1, d2] = x1 === x2 ? [0.5, 0.5] : [f(Math.abs(v - x1)), f(Math.abs(v - x2))];
      m[o][x1] += d2;
      m[o][x2] += d1;
    } else {
      const base = Math.floor(x);
      let w = cubicWeights(f(x - base), p.cubicA);
      if (p.excludeOutside) {
        w = w.map((c, k) => (base - 1 + k < 0 || base - 1 + k >= inLen ? 0 : c));
        const sum = w.reduce((s, c) => s + c, 0);
        w = w.map((c) => c / sum);
      }
      w.forEach((c, k) => (m[o][clamp(base - 1 + k)] += c));
    }
  }
  return m;
}

/** Per-axis scales as the runtime resolves them: given scales (on `axes` from opset 18), or out/in from sizes. */
function resolveScales(a: VjpArgs, rank: number, inS: readonly Dim[], outS: readonly Dim[]): number[] {
  const opset = a.emit.opset;
  const axes = (intsAttr(a.node, 'axes') ?? []).map((x) => (x + rank) % rank);
  const scalesName = opset >= 11 ? a.inputs[2] : a.inputs[1];
  const scalesT = scalesName ? a.constant(scalesName) : undefined;
  if (scalesName && !scalesT) throw new Error(`${where(a)}: scales computed at run time cannot be differentiated through`);
  const full = new Array<number>(rank).fill(1);
  if (scalesT && scalesT.size > 0) {
    const s = scalesT.toArray().map(f);
    if (axes.length) axes.forEach((ax, i) => (full[ax] = s[i]));
    else s.forEach((v, i) => (full[i] = v));
    return full;
  }
  if (!a.inputs[3]) throw new Error(`${where(a)}: neither scales nor sizes are given`);
  const listed = axes.length ? axes : Array.from({ length: rank }, (_, i) => i);
  for (const ax of listed) {
    const [i, o] = [inS[ax], outS[ax]];
    if (typeof i === 'string' && i === o) continue; // the same symbolic extent (a batch axis): not resized
    if (typeof i !== 'number' || typeof o !== 'number') throw new Error(`${where(a)}: extents along axis ${ax} must be known`);
    full[ax] = i === 0 ? 1 : f(o / i);
  }
  const policy = strAttr(a, 'keep_aspect_ratio_policy', 'stretch');
  if (policy !== 'stretch') {
    const common = policy === 'not_larger' ? Math.min(...listed.map((ax) => full[ax])) : Math.max(...listed.map((ax) => full[ax]));
    listed.forEach((ax) => (full[ax] = common));
  }
  return full;
}

export const resampleRules = {
  Resize: (a) => {
    const g = a.grads[0];
    if (!g || !a.wants[0]) return [];
    const e = a.emit;
    const [X, roiName] = a.inputs;
    const Y = a.outputs[0];
    const inS = a.info(X).shape;
    const outS = a.info(Y).shape;
    if (!inS || !outS) throw new Error(`${where(a)}: the ranks of '${X}' and '${Y}' must be known`);
    const rank = inS.length;
    if (intAttr(a.node, 'antialias', 0)) throw new Error(`${where(a)}: gradients of antialiased Resize are not supported`);
    const spec: AxisSpec = {
      mode: strAttr(a, 'mode', 'nearest'),
      coord: e.opset >= 11 ? strAttr(a, 'coordinate_transformation_mode', 'half_pixel') : 'asymmetric',
      nearest: e.opset >= 11 ? strAttr(a, 'nearest_mode', 'round_prefer_floor') : 'simple',
      cubicA: f(floatAttr(a.node, 'cubic_coeff_a', -0.75)),
      excludeOutside: intAttr(a.node, 'exclude_outside', 0) === 1,
    };
    if (!['nearest', 'linear', 'cubic'].includes(spec.mode)) throw new Error(`${where(a)}: mode '${spec.mode}' is not known`);
    // Same extents everywhere: the runtime copies the input through.
    if (inS.every((d, i) => d !== null && d === outS[i])) return [g];
    const scales = resolveScales(a, rank, inS, outS);
    let roi = Array.from({ length: 2 * rank }, (_, i): number => (i < rank ? 0 : 1));
    if (spec.coord === 'tf_crop_and_resize') {
      const r = roiName ? a.constant(roiName)?.toArray().map(f) : undefined;
      if (!r) throw new Error(`${where(a)}: tf_crop_and_resize needs a constant roi`);
      const axes = (intsAttr(a.node, 'axes') ?? []).map((x) => (x + rank) % rank);
      if (axes.length) axes.forEach((ax, i) => ((roi[ax] = r[i]), (roi[rank + ax] = r[axes.length + i])));
      else roi = r;
    }
    let dx = g;
    for (let ax = 0; ax < rank; ax++) {
      if (scales[ax] === 1) continue; // the runtime maps index to index on unscaled axes
      const [i, o] = [inS[ax], outS[ax]];
      if (typeof i !== 'number' || typeof o !== 'number') throw new Error(`${where(a)}: extents along resized axis ${ax} must be known`);
      // dx ×ₐ Aₐ: contracts the output extent o back to the input extent i.
      dx = alongAxis(e, dx, ax, rank, interpolationMatrix(spec, i, o, scales[ax], [roi[ax], roi[rank + ax]]), dtypeOf(a, X));
    }
    return [dx];
  },
} satisfies Record<string, VjpRule>;
