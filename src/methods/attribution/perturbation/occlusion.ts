/**
 * Occlusion (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks"; sensitivity analysis): a
 * window slides over each example, replacing the values under it by the baseline, and each value's attribution is
 * the mean over the windows covering it of f(x) − f(x occluded). Every occluded copy of every example is one row of a
 * few large runtime calls.
 *
 * Windows start at 0, stride, 2·stride… along each axis, and the last one is moved flush with the end, so with
 * stride ≤ window every value is covered (the `coverage` check says so; uncovered values get 0).
 *
 * @example
 * const occ = await occlusion(model, { x }, { target: 3, window: [1, 4, 4], stride: [1, 2, 2] });
 * occ.checks[0]; // coverage: fraction of the values under at least one window
 */
import type { Model } from '../../../model/model.js';
import type { Tensor } from '../../../runtime/tensor.js';
import { Attributor, type AttributionOptions } from '../attributor.js';
import { resolveBaseline, type Baseline } from '../baseline.js';
import type { Attribution } from '../explanation.js';
import { describeBaseline, result } from './features.js';
import { defaultWindow } from './masks.js';

export interface OcclusionOptions extends AttributionOptions {
  /** Window size per axis of one example (default: masks.ts `defaultWindow`: [1] for a vector, a token row of [T, D], ⌈H/8⌉ × ⌈W/8⌉ patches over all channels of [C, H, W]). */
  readonly window?: readonly number[];
  /** Step per axis (default: the window, so windows tile the example). */
  readonly stride?: readonly number[];
  /** What occluded values become (default 0). */
  readonly baseline?: Baseline;
}

/** Window origins along one axis: 0, s, 2s… and one flush with the end. */
function origins(dim: number, window: number, stride: number): number[] {
  const out: number[] = [];
  for (let p = 0; p + window <= dim; p += stride) out.push(p);
  if (out[out.length - 1] + window < dim) out.push(dim - window);
  return out;
}

function checkSizes(sizes: readonly number[], shape: readonly number[], what: string, atMostShape: boolean): void {
  if (sizes.length !== shape.length) throw new Error(`occlusion: ${what} [${sizes.join(', ')}] needs one size per axis of an example [${shape.join(', ')}]`);
  sizes.forEach((s, k) => {
    if (!Number.isInteger(s) || s < 1) throw new Error(`occlusion: ${what} [${sizes.join(', ')}] must hold positive integers (axis ${k}: ${s})`);
    if (atMostShape && s > shape[k]) throw new Error(`occlusion: ${what} [${sizes.join(', ')}] is larger than the example [${shape.join(', ')}] on axis ${k}`);
  });
}

export async function occlusion(model: Model, inputs: Readonly<Record<string, Tensor>>, options: OcclusionOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const a = await Attributor.create(model, inputs, options);
  const shape = a.rowShape;
  const window = options.window ?? defaultWindow(shape);
  const stride = options.stride ?? window;
  checkSizes(window, shape, 'window', true);
  checkSizes(stride, shape, 'stride', false);
  const b = resolveBaseline(options.baseline, a.x, 'occlusion: baseline').data;
  const R = a.rowSize;
  const rank = shape.length;
  const perAxis = shape.map((d, k) => origins(d, window[k], stride[k]));
  const W = perAxis.reduce((p, o) => p * o.length, 1);
  const strides = shape.map((_, k) => shape.slice(k + 1).reduce((p, d) => p * d, 1));
  const boxSize = window.reduce((p, w) => p * w, 1);

  /** Flat indices under window w (row-major over the origin grid). */
  const under = (w: number, visit: (flat: number) => void) => {
    let base = 0;
    for (let k = rank - 1, rest = w; k >= 0; k--) {
      base += perAxis[k][rest % perAxis[k].length] * strides[k];
      rest = Math.floor(rest / perAxis[k].length);
    }
    const idx = new Array<number>(rank).fill(0);
    for (let t = 0; t < boxSize; t++) {
      let flat = base;
      for (let k = 0; k < rank; k++) flat += idx[k] * strides[k];
      visit(flat);
      for (let k = rank - 1; k >= 0 && ++idx[k] === window[k]; k--) idx[k] = 0;
    }
  };

  // Row r occludes window r % W of example ⌊r / W⌋.
  const x = a.x.data;
  const f = await a.scores(a.n * W, (start, end) => {
    const rows = new Float32Array((end - start) * R);
    const owner = new Int32Array(end - start);
    for (let r = start; r < end; r++) {
      const i = Math.floor(r / W);
      const o = (r - start) * R;
      owner[r - start] = i;
      rows.set(x.subarray(i * R, (i + 1) * R), o);
      under(r % W, (j) => (rows[o + j] = b[i * R + j]));
    }
    return { rows, owner };
  });

  const covered = new Int32Array(R);
  for (let w = 0; w < W; w++) under(w, (j) => covered[j]++);
  const attr = new Float32Array(a.n * R);
  for (let i = 0; i < a.n; i++) {
    const sum = new Float64Array(R);
    for (let w = 0; w < W; w++) {
      const delta = a.scores0[i] - f[i * W + w];
      under(w, (j) => (sum[j] += delta));
    }
    for (let j = 0; j < R; j++) attr[i * R + j] = covered[j] > 0 ? sum[j] / covered[j] : 0;
  }
  const fraction = covered.reduce((n, c) => n + (c > 0 ? 1 : 0), 0) / Math.max(1, R);
  const coverage = {
    name: 'coverage',
    value: fraction,
    passed: fraction === 1,
    detail: `${(100 * fraction).toFixed(1)}% of each example's values lie under at least one of the ${W} windows (uncovered values get 0)`,
  };
  return result(a, 'occlusion', attr, started, [coverage], { window: [...window], stride: [...stride], windows: W, baseline: describeBaseline(options.baseline) });
}
