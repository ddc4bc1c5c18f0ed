/**
 * Random image transforms applied before each forward pass of feature synthesis (transformation robustness, Olah et
 * al. 2017 "Feature Visualization"; Mordvintsev et al. 2018), each a linear map with its exact adjoint, so the
 * model's input gradient is pulled back to the untransformed image: jitter is a circular roll (adjoint: roll back);
 * scale and rotation are one bilinear warp about the image centre (adjoint: scatter with the same weights).
 * Also the total-variation penalty with its gradient (Mahendran & Vedaldi 2015 "Understanding Deep Image
 * Representations by Inverting Them").
 *
 * Layout: Float64Array holding [B, C, H, W]; one transform per step acts on every image and channel alike.
 *
 * @example
 * const t = drawTransform(rand, [1, 1, 28, 28], { jitter: 2, scale: [0.9, 1.1], rotate: 10 });
 * const y = t.apply(x); const gx = t.adjoint(gy);
 */
import type { ImageShape } from './parametrization.js';

/** A linear image transform and its transpose. */
export interface ImageTransform {
  apply(x: Float64Array): Float64Array;
  adjoint(g: Float64Array): Float64Array;
}

export interface TransformOptions {
  /** Largest roll in pixels along each axis (uniform integer in [−j, j]); 0: none. */
  readonly jitter?: number;
  /** Range of a uniform random zoom factor, e.g. [0.9, 1.1]; omitted: none. */
  readonly scale?: readonly [number, number];
  /** Largest rotation in degrees (uniform in [−r, r]); 0: none. */
  readonly rotate?: number;
}

/** Circular roll by (dy, dx): y[i, k] = x[(i − dy) mod H, (k − dx) mod W]. Its adjoint is the roll by (−dy, −dx). */
export function roll(shape: ImageShape, dy: number, dx: number): ImageTransform {
  const [b, c, h, w] = shape;
  const go = (x: Float64Array, sy: number, sx: number) => {
    const out = new Float64Array(x.length);
    for (let m = 0; m < b * c; m++) {
      const o = m * h * w;
      for (let i = 0; i < h; i++) {
        const si = (((i - sy) % h) + h) % h;
        for (let k = 0; k < w; k++) out[o + i * w + k] = x[o + si * w + ((((k - sx) % w) + w) % w)];
      }
    }
    return out;
  };
  return { apply: (x) => go(x, dy, dx), adjoint: (g) => go(g, -dy, -dx) };
}

/**
 * Zoom by `factor` and rotate by `degrees` about the image centre, by bilinear sampling: output pixel (i, k) reads the
 * input at the inverse-mapped point; samples outside the image read 0. As a sparse matrix (four weights per output
 * pixel) its adjoint scatters each output gradient back to the four pixels it read.
 */
export function warp(shape: ImageShape, factor: number, degrees: number): ImageTransform {
  const [b, c, h, w] = shape;
  if (!(factor > 0)) throw new Error(`warp: the scale factor must be positive, got ${factor}`);
  const plane = h * w;
  const idx = new Int32Array(plane * 4).fill(-1);
  const wt = new Float64Array(plane * 4);
  const th = (degrees * Math.PI) / 180;
  const [cos, sin] = [Math.cos(th), Math.sin(th)];
  const [cy, cx] = [(h - 1) / 2, (w - 1) / 2];
  for (let i = 0; i < h; i++) for (let k = 0; k < w; k++) {
    // Inverse map: rotate by −θ, shrink by 1/factor.
    const [u, v] = [i - cy, k - cx];
    const sy = (cos * u - sin * v) / factor + cy;
    const sx = (sin * u + cos * v) / factor + cx;
    const [y0, x0] = [Math.floor(sy), Math.floor(sx)];
    const [fy, fx] = [sy - y0, sx - x0];
    const corners = [
      [y0, x0, (1 - fy) * (1 - fx)],
      [y0, x0 + 1, (1 - fy) * fx],
      [y0 + 1, x0, fy * (1 - fx)],
      [y0 + 1, x0 + 1, fy * fx],
    ];
    corners.forEach(([yy, xx, a], j) => {
      if (yy < 0 || yy >= h || xx < 0 || xx >= w || a === 0) return;
      idx[(i * w + k) * 4 + j] = yy * w + xx;
      wt[(i * w + k) * 4 + j] = a;
    });
  }
  return {
    apply(x) {
      const out = new Float64Array(x.length);
      for (let m = 0; m < b * c; m++) {
        const o = m * plane;
        for (let p = 0; p < plane; p++) {
          let s = 0;
          for (let j = 0; j < 4; j++) if (idx[p * 4 + j] >= 0) s += wt[p * 4 + j] * x[o + idx[p * 4 + j]];
          out[o + p] = s;
        }
      }
      return out;
    },
    adjoint(g) {
      const out = new Float64Array(g.length);
      for (let m = 0; m < b * c; m++) {
        const o = m * plane;
        for (let p = 0; p < plane; p++) for (let j = 0; j < 4; j++) if (idx[p * 4 + j] >= 0) out[o + idx[p * 4 + j]] += wt[p * 4 + j] * g[o + p];
      }
      return out;
    },
  };
}

/** Transforms applied in order (x → T_n(…T_1(x))); the adjoint runs them backwards. */
export function compose(ts: readonly ImageTransform[]): ImageTransform {
  return {
    apply: (x) => ts.reduce((v, t) => t.apply(v), x),
    adjoint: (g) => ts.reduceRight((v, t) => t.adjoint(v), g),
  };
}

/** This step's random transform: a roll, then one warp for scale and rotation (Lucid's jitter → scale → rotate). */
export function drawTransform(rand: () => number, shape: ImageShape, o: TransformOptions): ImageTransform {
  const ts: ImageTransform[] = [];
  const j = o.jitter ?? 0;
  if (j > 0) ts.push(roll(shape, Math.floor(rand() * (2 * j + 1)) - j, Math.floor(rand() * (2 * j + 1)) - j));
  const factor = o.scale ? o.scale[0] + rand() * (o.scale[1] - o.scale[0]) : 1;
  const degrees = o.rotate ? (2 * rand() - 1) * o.rotate : 0;
  if (factor !== 1 || degrees !== 0) ts.push(warp(shape, factor, degrees));
  return compose(ts);
}

export function validateTransforms(o: TransformOptions): void {
  if (o.jitter !== undefined && !(Number.isInteger(o.jitter) && o.jitter >= 0)) throw new Error(`synthesize: jitter must be a non-negative integer, got ${o.jitter}`);
  if (o.scale && !(o.scale[0] > 0 && o.scale[1] >= o.scale[0])) throw new Error(`synthesize: scale must be [lo, hi] with 0 < lo ≤ hi, got [${o.scale.join(', ')}]`);
  if (o.rotate !== undefined && !(o.rotate >= 0 && Number.isFinite(o.rotate))) throw new Error(`synthesize: rotate must be a non-negative number of degrees, got ${o.rotate}`);
}

/**
 * Isotropic total variation Σ √((Δy)² + (Δx)² + ε) over each channel (forward differences, last row/column without
 * a neighbour contribute 0) and its gradient.
 */
export function totalVariation(x: Float64Array, shape: ImageShape, eps = 1e-8): { value: number; grad: Float64Array } {
  const [b, c, h, w] = shape;
  const grad = new Float64Array(x.length);
  let value = 0;
  for (let m = 0; m < b * c; m++) {
    const o = m * h * w;
    for (let i = 0; i < h; i++) for (let k = 0; k < w; k++) {
      const p = o + i * w + k;
      const dy = i + 1 < h ? x[p + w] - x[p] : 0;
      const dx = k + 1 < w ? x[p + 1] - x[p] : 0;
      const n = Math.sqrt(dy * dy + dx * dx + eps);
      value += n;
      if (n === 0) continue;
      if (i + 1 < h) {
        grad[p + w] += dy / n;
        grad[p] -= dy / n;
      }
      if (k + 1 < w) {
        grad[p + 1] += dx / n;
        grad[p] -= dx / n;
      }
    }
  }
  return { value, grad };
}
