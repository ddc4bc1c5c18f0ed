/**
 * The one dataset interface of glassbox, shared by training loops, probes and methods that need example data.
 *
 * A dataset is a fixed, indexable collection. Its batches are tensors ready for a model: inputs `x` as float32
 * [B, ...inputShape] (images NCHW, scaled to [0, 1]) or int64 token ids [B, T], and targets `y` as int64 class labels
 * [B] (or next tokens [B, T]). Storage stays compact (uint8 pixels, token ids) and is converted one batch at a time,
 * so memory stays bounded however large the dataset.
 *
 * A concrete dataset supplies only a `DatasetSource` (its facts and `gather`); `dataset()` adds the rest.
 *
 * @example
 * const train = await loadMnist('train');
 * for (const { x, y } of train.batches(64, { shuffle: true, seed: 1, epoch })) {
 *   // x: Tensor<'float32'>[64×1×28×28], y: Tensor<'int64'>[64]
 * }
 */

import { Tensor } from '../../runtime/tensor.js';
import { mixSeed, permutation } from './random.js';

/** The dtypes a dataset's inputs come in: features and pixels as float32, token ids as int64. */
export type InputDType = 'float32' | 'int64';

/** Examples stacked along a new first axis. */
export interface Batch<X extends InputDType = InputDType> {
  /** Inputs [B, ...inputShape]. */
  readonly x: Tensor<X>;
  /** Targets, int64 [B, ...targetShape]: class labels [B], next tokens [B, T]. */
  readonly y: Tensor<'int64'>;
  /** Positions of these examples in the dataset that made the batch, in batch order. */
  readonly indices: Int32Array;
}

/** One example, without a batch axis. */
export interface Example<X extends InputDType = InputDType> {
  readonly x: Tensor<X>;
  readonly y: Tensor<'int64'>;
  readonly index: number;
}

/** What a concrete dataset supplies. */
export interface DatasetSource<X extends InputDType = InputDType> {
  readonly name: string;
  readonly size: number;
  /** Shape of one input (no batch axis): [1, 28, 28] for MNIST, [4] for iris, [T] for a token window. */
  readonly inputShape: readonly number[];
  readonly inputDType: X;
  /** Shape of one target (no batch axis): [] for a class label (the default), [T] for next tokens. */
  readonly targetShape?: readonly number[];
  /** How many values a target takes (classes, or the vocabulary size). */
  readonly numClasses?: number;
  readonly classNames?: readonly string[];
  /** Names of the input features, for tabular data. */
  readonly featureNames?: readonly string[];
  /** The class label of every example, when the target is one class (for counts, stratified splits, probes). */
  readonly labels?: ArrayLike<number>;
  /** The examples at these (valid, already checked) positions as tensors: x [n, ...inputShape], y [n, ...targetShape]. */
  gather(indices: Int32Array): { x: Tensor<X>; y: Tensor<'int64'> };
}

export interface BatchOptions {
  /** Visit examples in a seeded random order (default false: in order). */
  readonly shuffle?: boolean;
  /** Seed of the order (default 0). The same seed and epoch give the same batches. */
  readonly seed?: number;
  /** Mixed into the seed, so each epoch of a training loop gets its own order (default 0). */
  readonly epoch?: number;
  /** Leave out a last batch smaller than batchSize (default false). */
  readonly dropLast?: boolean;
}

/** Batches of one epoch; iterating again replays the same batches. */
export interface Batches<X extends InputDType> extends Iterable<Batch<X>> {
  /** Number of batches per pass. */
  readonly count: number;
}

export interface Dataset<X extends InputDType = InputDType> extends DatasetSource<X> {
  readonly targetShape: readonly number[];
  /** The examples at these positions, in this order (repeats allowed). */
  gather(indices: ArrayLike<number>): Batch<X>;
  /** Example i without the batch axis. */
  get(i: number): Example<X>;
  /** Examples [start, end) as a dataset that shares storage. */
  slice(start: number, end?: number): Dataset<X>;
  /** The examples at these positions as a dataset that shares storage. */
  subset(indices: ArrayLike<number>, name?: string): Dataset<X>;
  /** One epoch in batches of `batchSize` (the last one smaller unless dropLast). */
  batches(batchSize: number, options?: BatchOptions): Batches<X>;
}

/** A full dataset from its source; the source's `gather` is only ever called with checked indices. */
export function dataset<X extends InputDType>(source: DatasetSource<X>): Dataset<X> {
  const { size, name } = source;
  if (!Number.isInteger(size) || size < 0) throw new Error(`dataset ${name}: bad size ${size}`);
  if (source.labels !== undefined && source.labels.length !== size) {
    throw new Error(`dataset ${name}: ${source.labels.length} labels for ${size} examples`);
  }
  const targetShape = Object.freeze([...(source.targetShape ?? [])]);

  const gather = (indices: ArrayLike<number>): Batch<X> => {
    const ix = checked(indices, size, name);
    const { x, y } = source.gather(ix);
    return { x, y, indices: ix };
  };

  const subset = (indices: ArrayLike<number>, subName?: string): Dataset<X> => {
    const map = checked(indices, size, name);
    const labels = source.labels;
    return dataset({
      ...pick(source),
      name: subName ?? `${name}[subset of ${map.length}]`,
      size: map.length,
      targetShape,
      labels: labels === undefined ? undefined : Int32Array.from(map, (i) => labels[i]),
      gather: (ix) => source.gather(ix.map((i) => map[i])),
    });
  };

  return {
    ...pick(source),
    targetShape,
    gather,
    get(i: number): Example<X> {
      const b = gather([i]);
      return { x: b.x.reshape(b.x.shape.slice(1)), y: b.y.reshape(b.y.shape.slice(1)), index: i };
    },
    slice(start: number, end = size): Dataset<X> {
      const s = Math.max(0, Math.min(size, start < 0 ? size + start : start));
      const e = Math.max(s, Math.min(size, end < 0 ? size + end : end));
      const ix = new Int32Array(e - s);
      for (let k = 0; k < ix.length; k++) ix[k] = s + k;
      return subset(ix, `${name}[${s}:${e}]`);
    },
    subset,
    batches(batchSize: number, options: BatchOptions = {}): Batches<X> {
      if (!Number.isInteger(batchSize) || batchSize < 1) {
        throw new Error(`dataset ${name}: batchSize must be a positive integer, got ${batchSize}`);
      }
      const { shuffle = false, seed = 0, epoch = 0, dropLast = false } = options;
      const count = dropLast ? Math.floor(size / batchSize) : Math.ceil(size / batchSize);
      return {
        count,
        *[Symbol.iterator]() {
          const order = shuffle ? permutation(size, mixSeed(seed, epoch)) : null;
          for (let b = 0; b < count; b++) {
            const start = b * batchSize;
            const end = Math.min(size, start + batchSize);
            const ix = new Int32Array(end - start);
            for (let k = 0; k < ix.length; k++) ix[k] = order ? order[start + k] : start + k;
            const { x, y } = source.gather(ix);
            yield { x, y, indices: ix };
          }
        },
      };
    },
  };
}

/** Counts of each class label (length numClasses, or max label + 1). */
export function classCounts(ds: DatasetSource): number[] {
  const labels = ds.labels;
  if (labels === undefined) throw new Error(`classCounts: dataset ${ds.name} has no per-example class labels`);
  let n = ds.numClasses ?? 0;
  for (let i = 0; i < labels.length; i++) n = Math.max(n, labels[i] + 1);
  const counts = new Array<number>(n).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

/** A dataset whose inputs are transformed per batch (shape and dtype kept); storage is shared. */
export function mapInputs<X extends InputDType>(
  ds: Dataset<X>,
  fn: (x: Tensor<X>) => Tensor<X>,
  name = `${ds.name}[mapped]`,
): Dataset<X> {
  return dataset({
    ...pick(ds),
    name,
    targetShape: ds.targetShape,
    gather: (ix) => {
      const { x, y } = ds.gather(ix);
      const out = fn(x);
      if (out.dtype !== x.dtype || out.shape.join() !== x.shape.join()) {
        throw new Error(`mapInputs ${name}: the function turned ${x} into ${out}; it must keep shape and dtype`);
      }
      return { x: out, y };
    },
  });
}

function checked(indices: ArrayLike<number>, size: number, name: string): Int32Array {
  const ix = Int32Array.from(indices);
  for (let k = 0; k < ix.length; k++) {
    if (ix[k] !== indices[k] || ix[k] < 0 || ix[k] >= size) {
      throw new Error(`dataset ${name}: index ${indices[k]} out of range [0, ${size})`);
    }
  }
  return ix;
}

/** The descriptive fields of a source, without its functions. */
function pick<X extends InputDType>(s: DatasetSource<X>): Omit<DatasetSource<X>, 'gather'> {
  const { name, size, inputShape, inputDType, targetShape, numClasses, classNames, featureNames, labels } = s;
  return { name, size, inputShape, inputDType, targetShape, numClasses, classNames, featureNames, labels };
}
