/**
 * A dSprites-like dataset with known generative factors (Matthey et al. 2017, "dSprites: Disentanglement testing
 * Sprites dataset"): one white sprite on a black 28×28 canvas, drawn procedurally from five independent factors —
 * shape (square, ellipse, triangle), scale, orientation, x and y position. With no `size` the dataset is the full
 * factor grid (3·4·6·8·8 = 4608 images, every combination once, index = mixed-radix code of the factors); with `size`
 * and `seed`, factors are drawn uniformly at random. Images are rendered on demand, so memory stays bounded.
 * The label (y) is the shape, so a classifier can be trained on it.
 *
 * @example
 * const ds = factorDataset();
 * ds.factorNames; // ['shape', 'scale', 'orientation', 'x', 'y']
 * ds.factors(17); // Int32Array of the five levels of image 17
 */
import { Tensor } from '../../runtime/tensor.js';
import { dataset, type Dataset } from './dataset.js';
import { mixSeed, mulberry32 } from './random.js';

export const FACTOR_NAMES = ['shape', 'scale', 'orientation', 'x', 'y'] as const;
export const FACTOR_LEVELS = [3, 4, 6, 8, 8] as const;
export const SHAPES = ['square', 'ellipse', 'triangle'] as const;
const SIZE = 28;

export interface FactorSource {
  readonly factorNames: readonly string[];
  /** Levels per factor. */
  readonly factorLevels: readonly number[];
  /** The factor levels of example `index`. */
  factors(index: number): Int32Array;
  /** Factors of every example, row-major [size, 5]. */
  factorMatrix(): Int32Array;
}

export type FactorDataset = Dataset<'float32'> & FactorSource;

function decode(index: number): Int32Array {
  const out = new Int32Array(FACTOR_LEVELS.length);
  let r = index;
  for (let k = FACTOR_LEVELS.length - 1; k >= 0; k--) {
    out[k] = r % FACTOR_LEVELS[k];
    r = Math.floor(r / FACTOR_LEVELS[k]);
  }
  return out;
}

/** Renders one sprite into `out` (28×28, values 0 or 1). */
export function renderSprite(f: ArrayLike<number>, out: Float32Array): void {
  const [shape, scale, orient, px, py] = Array.from(f);
  const radius = 3 + 1.2 * scale; // 3 .. 6.6 pixels
  const theta = (orient / 6) * (Math.PI / 2) * (shape === 1 ? 2 : 1); // a quarter turn spans the square's symmetry
  const cx = 8 + px * (12 / 7);
  const cy = 8 + py * (12 / 7);
  const [c, s] = [Math.cos(theta), Math.sin(theta)];
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const u = (c * dx + s * dy) / radius; // sprite coordinates: rotated, unit size
      const v = (-s * dx + c * dy) / radius;
      let inside: boolean;
      if (shape === 0) inside = Math.abs(u) <= 0.8 && Math.abs(v) <= 0.8;
      else if (shape === 1) inside = u * u + (v * v) / 0.36 <= 1; // an ellipse, so orientation is visible
      else inside = v <= 0.6 && v >= -0.9 + 1.5 * Math.abs(u) * (1 / 0.9); // isosceles triangle, apex up
      out[y * SIZE + x] = inside ? 1 : 0;
    }
  }
}

/** The dataset: the full factor grid, or `size` random factor draws from `seed`. */
export function factorDataset(options: { size?: number; seed?: number } = {}): FactorDataset {
  const grid = FACTOR_LEVELS.reduce((a, b) => a * b, 1);
  const size = options.size ?? grid;
  if (!Number.isInteger(size) || size <= 0) throw new Error(`factorDataset: size must be a positive integer, got ${size}`);
  if (options.size !== undefined && options.seed === undefined) throw new Error('factorDataset: a random draw (size) needs a seed');
  const factors = (index: number): Int32Array => {
    if (!Number.isInteger(index) || index < 0 || index >= size) throw new Error(`factorDataset: index ${index} is out of range 0..${size - 1}`);
    if (options.size === undefined) return decode(index);
    const rand = mulberry32(mixSeed(options.seed!, index));
    return Int32Array.from(FACTOR_LEVELS, (n) => Math.floor(rand() * n));
  };
  const labels = Int32Array.from({ length: size }, (_, i) => factors(i)[0]);
  const ds = dataset({
    name: options.size === undefined ? 'factors (full grid)' : `factors (${size} drawn, seed ${options.seed})`,
    size,
    inputShape: [1, SIZE, SIZE],
    inputDType: 'float32',
    numClasses: SHAPES.length,
    classNames: SHAPES,
    labels,
    gather(ix) {
      const x = new Float32Array(ix.length * SIZE * SIZE);
      ix.forEach((i, b) => renderSprite(factors(i), x.subarray(b * SIZE * SIZE, (b + 1) * SIZE * SIZE)));
      return { x: Tensor.float32(x, [ix.length, 1, SIZE, SIZE]), y: Tensor.int64(Array.from(ix, (i) => labels[i]), [ix.length]) };
    },
  });
  return Object.assign(ds, {
    factorNames: FACTOR_NAMES,
    factorLevels: FACTOR_LEVELS,
    factors,
    factorMatrix: () => {
      const m = new Int32Array(size * FACTOR_LEVELS.length);
      for (let i = 0; i < size; i++) m.set(factors(i), i * FACTOR_LEVELS.length);
      return m;
    },
  });
}
