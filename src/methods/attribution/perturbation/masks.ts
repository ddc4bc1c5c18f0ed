/**
 * Feature masks for the perturbation methods: an integer group id per value of one example. Grid patches
 * (`patchMask`), SLIC superpixels (`superpixels`, Achanta et al. 2012, "SLIC Superpixels Compared to State-of-the-Art
 * Superpixel Methods"), and the default features of an example shape (`defaultWindow`), shared with occlusion.
 *
 * @example
 * const patches = patchMask([3, 224, 224], 16);                          // 14 × 14 ids, all channels together
 * const segments = superpixels(image, { segments: 50, compactness: 10 }); // image [3, H, W] → int32 [3, H, W]
 * await lime(model, { x: image.reshape([1, 3, H, W]) }, { featureMask: segments });
 */
import { Tensor, sizeOf } from '../../../runtime/tensor.js';

const isCount = (v: number) => Number.isInteger(v) && v >= 1;

/**
 * The default window (occlusion) and feature (mask methods) of one example's shape: one value of a vector [D]; one
 * row of [T, D] (a token of an embedding sequence); for [..., H, W] (images), all leading axes (channels) together
 * over ⌈H/8⌉ × ⌈W/8⌉ patches, so about 8 × 8 = 64 features whatever the resolution.
 */
export function defaultWindow(shape: readonly number[]): number[] {
  if (shape.length === 0) return [];
  if (shape.length === 1) return [1];
  if (shape.length === 2) return [1, shape[1]];
  return shape.map((d, k) => (k < shape.length - 2 ? d : Math.ceil(d / 8)));
}

/**
 * Grid patches over one example's shape, ids in row-major order of the grid. `patch`: a number (the side over the
 * last two axes, or the one axis of a vector; leading axes are kept together), two sizes (the last two axes), or one
 * size per axis. Edge patches are smaller where a size does not divide the axis.
 */
export function patchMask(exampleShape: readonly number[], patch: number | readonly number[]): Tensor<'int32'> {
  const rank = exampleShape.length;
  if (rank === 0 || !exampleShape.every(isCount)) throw new Error(`patchMask: example shape [${exampleShape.join(', ')}] must have positive integer sizes`);
  const spatial = Math.min(2, rank);
  const given = typeof patch === 'number' ? new Array<number>(spatial).fill(patch) : [...patch];
  if (given.length !== rank && given.length !== spatial) {
    throw new Error(`patchMask: patch [${given.join(', ')}] needs ${spatial === rank ? rank : `${spatial} (the last axes) or ${rank}`} sizes for an example [${exampleShape.join(', ')}]`);
  }
  const sizes = given.length === rank ? given : exampleShape.map((d, k) => (k < rank - spatial ? d : given[k - (rank - spatial)]));
  sizes.forEach((p, k) => {
    if (!isCount(p) || p > exampleShape[k]) throw new Error(`patchMask: patch size ${p} on axis ${k} must be an integer in [1, ${exampleShape[k]}]`);
  });
  const grid = exampleShape.map((d, k) => Math.ceil(d / sizes[k]));
  const out = new Int32Array(sizeOf(exampleShape));
  const idx = new Array<number>(rank).fill(0);
  for (let f = 0; f < out.length; f++) {
    let id = 0;
    for (let k = 0; k < rank; k++) id = id * grid[k] + Math.floor(idx[k] / sizes[k]);
    out[f] = id;
    for (let k = rank - 1; k >= 0 && ++idx[k] === exampleShape[k]; k--) idx[k] = 0;
  }
  return new Tensor('int32', out, exampleShape);
}

export interface SuperpixelOptions {
  /** About how many superpixels (default 50). */
  readonly segments?: number;
  /**
   * Weight of space against colour, the paper's m (default 10, its usual range 1–40). Colours are rescaled so the
   * image's value range spans 100, the range of CIELAB lightness the paper's m was tuned for.
   */
  readonly compactness?: number;
  /** k-means iterations (default 10; the paper finds 10 enough for most images). */
  readonly iterations?: number;
}

/**
 * SLIC superpixels of one image [C, H, W] (or [1, C, H, W]): local k-means over (colour, position) from a regular
 * grid of S × S cells with S = √(HW / segments), seeds moved to the lowest gradient of their 3 × 3 neighbourhood,
 * distance √(d_colour² + (d_space / S)² m²), then connectivity enforced (components under S²/4 pixels join the
 * adjacent segment of closest mean colour). Deterministic. Returns int32 ids 0…K−1 of the image's shape, the same
 * for all channels.
 */
export function superpixels(image: Tensor, options: SuperpixelOptions = {}): Tensor<'int32'> {
  const batched = image.rank === 4 && image.shape[0] === 1;
  if (!(image.rank === 3 || batched) || image.dtype !== 'float32') {
    throw new Error(`superpixels: expected a float32 image [C, H, W] or [1, C, H, W], got ${image.dtype} [${image.shape.join(', ')}]`);
  }
  const [C, H, W] = image.shape.slice(-3);
  const K = options.segments ?? 50;
  const m = options.compactness ?? 10;
  const iterations = options.iterations ?? 10;
  if (!isCount(K) || K > H * W) throw new Error(`superpixels: segments must be an integer in [1, ${H * W}], got ${K}`);
  if (!(m >= 0) || !Number.isFinite(m)) throw new Error(`superpixels: compactness must be a finite number ≥ 0, got ${m}`);
  if (!isCount(iterations)) throw new Error(`superpixels: iterations must be a positive integer, got ${iterations}`);
  const src = image.data as Float32Array;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of src) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error('superpixels: the image holds NaN or infinity');
  const P = H * W;
  const scale = hi > lo ? 100 / (hi - lo) : 0;
  const col = new Float64Array(P * C); // [H·W, C]: rescaled colours, pixel-major
  for (let c = 0; c < C; c++) for (let p = 0; p < P; p++) col[p * C + c] = (src[c * P + p] - lo) * scale;
  const colourDist = (p: number, q: number) => {
    let s = 0;
    for (let c = 0; c < C; c++) s += (col[p * C + c] - col[q * C + c]) ** 2;
    return s;
  };

  // Seeds on a regular grid, each moved to the lowest gradient of its 3 × 3 neighbourhood (off edges and noise).
  const ny = Math.max(1, Math.round(H / Math.sqrt(P / K)));
  const nx = Math.max(1, Math.min(W, Math.round(K / ny)));
  const S = Math.sqrt(P / (ny * nx));
  const at = (y: number, x: number) => Math.min(H - 1, Math.max(0, y)) * W + Math.min(W - 1, Math.max(0, x));
  const gradient = (y: number, x: number) => colourDist(at(y + 1, x), at(y - 1, x)) + colourDist(at(y, x + 1), at(y, x - 1));
  const k0 = ny * nx;
  const cy = new Float64Array(k0);
  const cx = new Float64Array(k0);
  const cc = new Float64Array(k0 * C);
  for (let r = 0; r < ny; r++) {
    for (let q = 0; q < nx; q++) {
      let [by, bx] = [Math.floor(((r + 0.5) * H) / ny), Math.floor(((q + 0.5) * W) / nx)];
      let best = gradient(by, bx);
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const [y, x] = [by + dy, bx + dx];
          if (y < 0 || y >= H || x < 0 || x >= W) continue;
          const g = gradient(y, x);
          if (g < best) [best, by, bx] = [g, y, x];
        }
      }
      const k = r * nx + q;
      [cy[k], cx[k]] = [by, bx];
      for (let c = 0; c < C; c++) cc[k * C + c] = col[(by * W + bx) * C + c];
    }
  }

  const label = new Int32Array(P);
  const dist = new Float64Array(P);
  const spaceWeight = (m * m) / (S * S);
  const distance = (k: number, p: number, y: number, x: number) => {
    let s = 0;
    for (let c = 0; c < C; c++) s += (col[p * C + c] - cc[k * C + c]) ** 2;
    return s + ((y - cy[k]) ** 2 + (x - cx[k]) ** 2) * spaceWeight;
  };
  const reach = Math.ceil(S);
  for (let it = 0; it < iterations; it++) {
    label.fill(-1);
    dist.fill(Infinity);
    for (let k = 0; k < k0; k++) {
      for (let y = Math.max(0, Math.floor(cy[k] - reach)); y <= Math.min(H - 1, Math.ceil(cy[k] + reach)); y++) {
        for (let x = Math.max(0, Math.floor(cx[k] - reach)); x <= Math.min(W - 1, Math.ceil(cx[k] + reach)); x++) {
          const p = y * W + x;
          const D = distance(k, p, y, x);
          if (D < dist[p]) [dist[p], label[p]] = [D, k];
        }
      }
    }
    // A pixel no seed reached (seeds drift apart) takes the nearest seed overall.
    for (let p = 0; p < P; p++) {
      if (label[p] >= 0) continue;
      for (let k = 0; k < k0; k++) {
        const D = distance(k, p, Math.floor(p / W), p % W);
        if (D < dist[p]) [dist[p], label[p]] = [D, k];
      }
    }
    const count = new Float64Array(k0);
    const sy = new Float64Array(k0);
    const sx = new Float64Array(k0);
    const sc = new Float64Array(k0 * C);
    for (let p = 0; p < P; p++) {
      const k = label[p];
      count[k]++;
      sy[k] += Math.floor(p / W);
      sx[k] += p % W;
      for (let c = 0; c < C; c++) sc[k * C + c] += col[p * C + c];
    }
    for (let k = 0; k < k0; k++) {
      if (count[k] === 0) continue;
      [cy[k], cx[k]] = [sy[k] / count[k], sx[k] / count[k]];
      for (let c = 0; c < C; c++) cc[k * C + c] = sc[k * C + c] / count[k];
    }
  }

  const segments = connectedSegments(label, H, W, col, C, Math.max(1, Math.floor((S * S) / 4)));
  const out = new Int32Array(C * P);
  for (let c = 0; c < C; c++) out.set(segments, c * P);
  return new Tensor('int32', out, image.shape);
}

/**
 * Connected components (4-neighbourhood) of a labelling, those under `minSize` pixels merged into the adjacent
 * component of closest mean colour (smallest first), relabelled 0…K−1 in scan order.
 */
function connectedSegments(label: Int32Array, H: number, W: number, col: Float64Array, C: number, minSize: number): Int32Array {
  const P = H * W;
  const comp = new Int32Array(P).fill(-1);
  const sizes: number[] = [];
  const stack: number[] = [];
  for (let p0 = 0; p0 < P; p0++) {
    if (comp[p0] >= 0) continue;
    const id = sizes.length;
    let size = 0;
    comp[p0] = id;
    stack.push(p0);
    while (stack.length) {
      const p = stack.pop()!;
      size++;
      const [y, x] = [Math.floor(p / W), p % W];
      for (const q of [y > 0 ? p - W : -1, y < H - 1 ? p + W : -1, x > 0 ? p - 1 : -1, x < W - 1 ? p + 1 : -1]) {
        if (q >= 0 && comp[q] < 0 && label[q] === label[p]) {
          comp[q] = id;
          stack.push(q);
        }
      }
    }
    sizes.push(size);
  }
  const n = sizes.length;
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  const mean = new Float64Array(n * C);
  for (let p = 0; p < P; p++) for (let c = 0; c < C; c++) mean[comp[p] * C + c] += col[p * C + c] / sizes[comp[p]];
  const size = Float64Array.from(sizes);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => sizes[a] - sizes[b] || a - b);
  for (const i of order) {
    const r = find(i);
    if (size[r] >= minSize) continue;
    let best = -1;
    let bestD = Infinity;
    for (let p = 0; p < P; p++) {
      if (find(comp[p]) !== r) continue;
      const [y, x] = [Math.floor(p / W), p % W];
      for (const q of [y > 0 ? p - W : -1, y < H - 1 ? p + W : -1, x > 0 ? p - 1 : -1, x < W - 1 ? p + 1 : -1]) {
        if (q < 0) continue;
        const s = find(comp[q]);
        if (s === r) continue;
        let d = 0;
        for (let c = 0; c < C; c++) d += (mean[r * C + c] - mean[s * C + c]) ** 2;
        if (d < bestD || (d === bestD && s < best)) [bestD, best] = [d, s];
      }
    }
    if (best < 0) continue; // the whole image
    for (let c = 0; c < C; c++) mean[best * C + c] = (mean[best * C + c] * size[best] + mean[r * C + c] * size[r]) / (size[best] + size[r]);
    size[best] += size[r];
    parent[r] = best;
  }
  const ids = new Map<number, number>();
  const out = new Int32Array(P);
  for (let p = 0; p < P; p++) {
    const r = find(comp[p]);
    if (!ids.has(r)) ids.set(r, ids.size);
    out[p] = ids.get(r)!;
  }
  return out;
}
