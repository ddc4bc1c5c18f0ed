/**
 * Training a fresh copy of an architecture with the project's trainer, as the data-randomisation test (Adebayo
 * et al. 2018) and remove-and-retrain (Hooker et al. 2019) both need: the same ModelProto (so the same initial
 * weights, from the builder's seed) and the same shuffling seed every time, so runs differ only in their data.
 *
 * @example
 * const { model, trainAccuracy } = await trainFresh(mlp({ inputs: [1, 28, 28], hidden: [32], classes: 10, seed: 1 }), train, { epochs: 3 });
 */
import { dataset, type Dataset } from '../../data/datasets/dataset.js';
import { permutation } from '../../data/datasets/random.js';
import { Model } from '../../model/model.js';
import { Trainer } from '../../model/train/trainer.js';
import type { OptimizerConfig } from '../../model/train/optim.js';
import { encodeModel, type ModelProto } from '../../onnx/proto.js';
import { Tensor } from '../../runtime/tensor.js';

export interface RetrainOptions {
  /** Default Adam with lr 3e-3. */
  readonly optimizer?: OptimizerConfig;
  /** Default 5. */
  readonly epochs?: number;
  /** Default 32. */
  readonly batchSize?: number;
  /** Shuffling seed of the trainer (default 0). */
  readonly trainSeed?: number;
  readonly signal?: AbortSignal;
}

export interface Trained {
  readonly model: Model;
  readonly trainAccuracy: number;
  /** Accuracy on the test set, where one was given. */
  readonly testAccuracy?: number;
}

/** Trains `architecture` from its initial weights on `train`; evaluates on `train` (and `test`). */
export async function trainFresh(architecture: ModelProto, train: Dataset, options: RetrainOptions = {}, test?: Dataset): Promise<Trained> {
  const epochs = options.epochs ?? 5;
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`retraining: epochs must be a positive integer, got ${epochs}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`retraining: batchSize must be a positive integer, got ${batchSize}`);
  if (train.size === 0) throw new Error(`retraining: the training set ${train.name} is empty`);
  const t = await Trainer.create(architecture, { optimizer: options.optimizer ?? { kind: 'adam', lr: 3e-3 } });
  try {
    const fit = await t.fit(train, { epochs, batchSize, seed: options.trainSeed ?? 0, signal: options.signal });
    if (fit.stopped) options.signal?.throwIfAborted();
    const trainAccuracy = (await t.evaluate(train)).accuracy;
    const testAccuracy = test ? (await t.evaluate(test)).accuracy : undefined;
    const model = await Model.load(encodeModel(t.exportModel()));
    return { model, trainAccuracy, ...(testAccuracy === undefined ? {} : { testAccuracy }) };
  } finally {
    await t.dispose();
  }
}

/** The dataset with its class labels permuted by a seeded permutation (inputs unchanged, storage shared). */
export function permutedLabels<X extends 'float32' | 'int64'>(data: Dataset<X>, seed: number): Dataset<X> {
  const labels = data.labels;
  if (labels === undefined || data.targetShape.length !== 0) {
    throw new Error(`data randomization: dataset ${data.name} has no per-example class labels to permute`);
  }
  const perm = permutation(data.size, seed);
  const permuted = Int32Array.from(perm, (j) => labels[j]);
  return dataset({
    name: `${data.name}[labels permuted]`,
    size: data.size,
    inputShape: data.inputShape,
    inputDType: data.inputDType,
    numClasses: data.numClasses,
    classNames: data.classNames,
    labels: permuted,
    gather: (ix) => ({ x: data.gather(ix).x, y: Tensor.int64(Array.from(ix, (i) => permuted[i]), [ix.length]) }),
  });
}
