/**
 * The comparison every active method owes (issue: rules and active interpretability): train the model with its
 * regulariser, and its unregularised twin — same architecture, initial weights, data, shuffling seed, epochs and
 * optimiser — and measure both on the same test data. The regularised run's accuracy cost is the price of the
 * interpretability gain the method claims; each method measures that gain on the two models this returns.
 *
 * A `Regularizer` is also what `glassbox train --regularize …` hands the trainer: terms, host terms, per-batch extra
 * inputs or a batch transform, and (for methods that change the architecture, such as L0 gates) the model to train
 * and how to turn the trained one into the inference model.
 *
 * @example
 * const model = mlp({ inputs: 30, hidden: [32], classes: 2, seed: 1 });
 * const t = await trainTwins(model, l1Regularizer(model, { strength: 1e-3 }), { train, test, epochs: 20, batchSize: 32, seed: 1 });
 * t.regularized.accuracy; t.twin.accuracy; t.accuracyCost; // twin − regularised, in accuracy points (a fraction)
 * const again = await trainTwins(model, groupLassoRegularizer(model), { train, test, epochs: 20, batchSize: 32, seed: 1, twin: t.twin }); // the twin is reused
 */
import type { Batch, Dataset } from '../../data/datasets/dataset.js';
import { Model } from '../../model/model.js';
import { Trainer, type EpochRecord, type HostTerm, type LossTerm, type OptimizerConfig } from '../../model/train/index.js';
import { encodeModel, type ModelProto } from '../../onnx/proto.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { crossEntropy } from '../weights/pruning.js';

/** What a training-time method adds to a trainer. */
export interface Regularizer {
  readonly terms?: readonly LossTerm[];
  readonly hostTerms?: readonly HostTerm[];
  /** Per-batch inputs the graph terms read (FitOptions.extra). */
  readonly extra?: (batch: Batch) => Readonly<Record<string, Tensor>>;
  /** Runs before every step (FitOptions.transform): may do asynchronous work such as refitting a surrogate. */
  readonly transform?: (batch: Batch, trainer: Trainer) => Promise<Batch>;
  /** The model to train instead of the one given (a method that adds layers or gates). */
  readonly model?: ModelProto;
  /** Weights to train (default: every float32 initializer). */
  readonly weights?: readonly string[];
  /** The inference model from the trained one (default: as trained), e.g. stochastic gates made deterministic. */
  readonly finish?: (trained: ModelProto) => ModelProto;
}

export interface TwinOptions {
  readonly train: Dataset;
  readonly test: Dataset;
  readonly epochs: number;
  readonly batchSize: number;
  /** Shuffling seed of both runs. */
  readonly seed: number;
  /** Default Adam, lr 1e-2. */
  readonly optimizer?: OptimizerConfig;
  /** The unregularised twin, already trained with these same options (shared between methods). */
  readonly twin?: TrainedRun;
}

/** One trained model, as the inference graph, loaded, and scored on the test data. */
export interface TrainedRun {
  readonly proto: ModelProto;
  readonly model: Model;
  readonly accuracy: number;
  /** Mean test cross-entropy. */
  readonly loss: number;
  readonly history: readonly EpochRecord[];
  readonly seconds: number;
  /** The options it was trained with, so a shared twin can be checked against the regularised run's. */
  readonly settings: { readonly epochs: number; readonly batchSize: number; readonly seed: number; readonly optimizer: OptimizerConfig; readonly train: string };
}

export interface Twins {
  readonly regularized: TrainedRun;
  readonly twin: TrainedRun;
  /** Twin accuracy − regularised accuracy (positive: the regulariser cost accuracy). */
  readonly accuracyCost: number;
  readonly checks: readonly Check[];
}

const DEFAULT_OPTIMIZER: OptimizerConfig = { kind: 'adam', lr: 1e-2 };

/** Test accuracy and mean cross-entropy of a loaded classifier, streamed in batches. */
export async function testAccuracy(model: Model, data: Dataset, batchSize = 512): Promise<{ accuracy: number; loss: number }> {
  if (model.inputs.length !== 1) throw new Error(`testAccuracy: the model must read one input, it reads ${model.inputs.length}`);
  const input = model.inputs[0].name;
  const output = model.outputs[0].name;
  let correct = 0;
  let loss = 0;
  for (const b of data.batches(batchSize)) {
    const { outputs } = await model.run({ [input]: b.x });
    const r = crossEntropy(outputs[output], b.y);
    correct += r.correct;
    loss += r.loss;
  }
  const n = Math.max(1, data.size);
  return { accuracy: correct / n, loss: loss / n };
}

/** The argmax class of a loaded classifier for every example of a dataset, in order. */
export async function predictedClasses(model: Model, data: Dataset, batchSize = 512): Promise<Int32Array> {
  const input = model.inputs[0].name;
  const output = model.outputs[0].name;
  const out = new Int32Array(data.size);
  let r = 0;
  for (const b of data.batches(batchSize)) {
    const logits = (await model.run({ [input]: b.x })).outputs[output];
    const [n, c] = logits.shape;
    if (logits.rank !== 2) throw new Error(`predictedClasses: logits must be [batch, classes], got [${logits.shape.join(', ')}]`);
    const d = logits.data as Float32Array;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let k = 1; k < c; k++) if (d[i * c + k] > d[i * c + best]) best = k;
      out[r++] = best;
    }
  }
  return out;
}

/** Trains `model` with a regulariser (or none) and returns the inference model, loaded and scored. */
export async function trainRun(model: ModelProto, regularizer: Regularizer | null, options: TwinOptions): Promise<TrainedRun> {
  const { train, test, epochs, batchSize, seed } = options;
  const optimizer = options.optimizer ?? DEFAULT_OPTIMIZER;
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`trainTwins: epochs must be a positive integer, got ${epochs}`);
  if (train.size < 1 || test.size < 1) throw new Error(`trainTwins: empty data (train ${train.size}, test ${test.size} examples)`);
  const r = regularizer ?? {};
  const started = performance.now();
  const trainer = await Trainer.create(r.model ?? model, { optimizer, weights: r.weights, terms: r.terms, hostTerms: r.hostTerms });
  try {
    const fit = await trainer.fit(train, { epochs, batchSize, seed, extra: r.extra, transform: r.transform });
    const trained = trainer.exportModel();
    const proto = r.finish ? r.finish(trained) : trained;
    const loaded = await Model.load(encodeModel(proto));
    const score = await testAccuracy(loaded, test);
    return {
      proto,
      model: loaded,
      ...score,
      history: fit.history,
      seconds: (performance.now() - started) / 1000,
      settings: { epochs, batchSize, seed, optimizer, train: train.name },
    };
  } finally {
    await trainer.dispose();
  }
}

/**
 * The regularised model and its unregularised twin, trained on the same data with the same seed and epochs (the twin
 * is reused when `options.twin` is given: it must have been trained with the same settings).
 */
export async function trainTwins(model: ModelProto, regularizer: Regularizer, options: TwinOptions): Promise<Twins> {
  const regularized = await trainRun(model, regularizer, options);
  const twin = options.twin ?? (await trainRun(model, null, options));
  const s = regularized.settings;
  const t = twin.settings;
  if (s.epochs !== t.epochs || s.batchSize !== t.batchSize || s.seed !== t.seed || s.train !== t.train || JSON.stringify(s.optimizer) !== JSON.stringify(t.optimizer)) {
    throw new Error(`trainTwins: the twin given was trained with ${JSON.stringify(t)}, the regularised run with ${JSON.stringify(s)}; they must match`);
  }
  const accuracyCost = twin.accuracy - regularized.accuracy;
  return {
    regularized,
    twin,
    accuracyCost,
    checks: [
      {
        name: 'accuracy cost',
        value: accuracyCost,
        detail: `test accuracy ${(100 * regularized.accuracy).toFixed(1)}% regularised vs ${(100 * twin.accuracy).toFixed(1)}% for the unregularised twin (same data, seed ${s.seed}, ${s.epochs} epochs)`,
      },
    ],
  };
}
