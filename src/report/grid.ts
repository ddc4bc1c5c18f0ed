/**
 * A batch of images as one PNG grid (row-major, `columns` per row), e.g. the inputs feature synthesis produced.
 * Grey ([B, 1, H, W]) stays grey, RGB ([B, 3, H, W]) stays RGB; each image may be enlarged by an integer factor
 * (nearest neighbour) and is separated from its neighbours by `pad` pixels of `background`.
 *
 * @example
 * await writeFile('syntheses.png', imageGrid(result.images, { columns: 4, pad: 2, scale: 4 }));
 */
import { encodePng } from '../data/png.js';
import { Tensor } from '../runtime/tensor.js';

export interface GridOptions {
  /** Images per row (default: all in one row, at most 8). */
  readonly columns?: number;
  /** Pixels between images and around the border (default 1). */
  readonly pad?: number;
  /** Integer enlargement of every image (default 1). */
  readonly scale?: number;
  /**
   * How values map to black..white: false (default) takes them in `range`; 'each' stretches every image's own
   * min..max; 'all' the whole batch's min..max.
   */
  readonly normalize?: false | 'each' | 'all';
  /** Values mapped to black and white when not normalising (default [0, 1]); outside clamps. */
  readonly range?: readonly [number, number];
  /** Grey level of the padding in [0, 1] (default 1: white). */
  readonly background?: number;
}

/** Where image `i` starts in a grid built with these options (for reading pixels back). */
export function gridOrigin(i: number, h: number, w: number, options: Pick<GridOptions, 'columns' | 'pad' | 'scale'> & { count: number }): [number, number] {
  const { columns, pad, scale } = layout(options.count, options);
  return [pad + Math.floor(i / columns) * (h * scale + pad), pad + (i % columns) * (w * scale + pad)];
}

/** PNG bytes of the images [B, C, H, W] (C 1 or 3) laid out in a grid. */
export function imageGrid(images: Tensor, options: GridOptions = {}): Uint8Array {
  return encodePng(gridTensor(images, options), { range: [0, 1] });
}

/** The grid as float32 [C, rows·(H·s + pad) + pad, cols·(W·s + pad) + pad] in [0, 1]. */
export function gridTensor(images: Tensor, options: GridOptions = {}): Tensor<'float32'> {
  const t = images.rank === 3 ? images.reshape([1, ...images.shape]) : images;
  if (t.rank !== 4) throw new Error(`imageGrid: expected images [B, C, H, W] or [C, H, W], got [${images.shape.join(', ')}]`);
  const [B, C, H, W] = t.shape;
  if (C !== 1 && C !== 3) throw new Error(`imageGrid: images need 1 (grey) or 3 (RGB) channels, got ${C}`);
  if (B === 0 || H === 0 || W === 0) throw new Error(`imageGrid: no pixels in [${t.shape.join(', ')}]`);
  const { columns, pad, scale } = layout(B, options);
  const bg = options.background ?? 1;
  if (!(bg >= 0 && bg <= 1)) throw new Error(`imageGrid: background must be in [0, 1], got ${bg}`);
  const rows = Math.ceil(B / columns);
  const [gh, gw] = [rows * (H * scale + pad) + pad, columns * (W * scale + pad) + pad];
  const out = new Float32Array(C * gh * gw).fill(bg);
  const per = C * H * W;
  const values = Array.from(t.data as ArrayLike<number | bigint>, Number);
  const bounds = (from: number, to: number): [number, number] => {
    let [lo, hi] = [Infinity, -Infinity];
    for (let i = from; i < to; i++) if (Number.isFinite(values[i])) [lo, hi] = [Math.min(lo, values[i]), Math.max(hi, values[i])];
    return lo <= hi ? [lo, hi] : [0, 1];
  };
  const all = options.normalize === 'all' ? bounds(0, values.length) : undefined;
  const fixed = options.range ?? [0, 1];
  if (!(fixed[0] < fixed[1])) throw new Error(`imageGrid: range must be [lo, hi] with lo < hi, got [${fixed.join(', ')}]`);
  for (let b = 0; b < B; b++) {
    const [lo, hi] = options.normalize === 'each' ? bounds(b * per, (b + 1) * per) : all ?? fixed;
    const span = hi > lo ? hi - lo : 1;
    const [y0, x0] = gridOrigin(b, H, W, { columns, pad, scale, count: B });
    for (let c = 0; c < C; c++) for (let y = 0; y < H * scale; y++) for (let x = 0; x < W * scale; x++) {
      const v = values[b * per + c * H * W + Math.floor(y / scale) * W + Math.floor(x / scale)];
      out[c * gh * gw + (y0 + y) * gw + x0 + x] = Number.isFinite(v) ? Math.min(1, Math.max(0, (v - lo) / span)) : 0;
    }
  }
  return Tensor.float32(out, [C, gh, gw]);
}

function layout(count: number, o: Pick<GridOptions, 'columns' | 'pad' | 'scale'>): { columns: number; pad: number; scale: number } {
  const columns = o.columns ?? Math.min(count, 8);
  const pad = o.pad ?? 1;
  const scale = o.scale ?? 1;
  if (!Number.isInteger(columns) || columns < 1) throw new Error(`imageGrid: columns must be a positive integer, got ${columns}`);
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`imageGrid: pad must be a non-negative integer, got ${pad}`);
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`imageGrid: scale must be a positive integer, got ${scale}`);
  return { columns, pad, scale };
}
