/**
 * Training a classifier (or a language model: a classifier per position) built as an ONNX graph. Each step is one
 * run of one session that computes the forward pass, the cross-entropy loss and every weight gradient (graph.ts);
 * the weights are graph inputs, fed from Float32Arrays that the optimiser updates in place on the host (optim.ts).
 * Shuffling is seeded per epoch (Dataset.batches), so a run is reproducible, and a checkpoint holds everything a run
 * depends on (weights, optimiser state, epoch and batch counters), so a resumed run continues bit-identically.
 *
 * @example
 * const trainer = await Trainer.create(cnn({ input: [1, 28, 28], channels: [16, 32], classes: 10, seed: 1 }), {
 *   optimizer: { kind: 'adam', lr: 1e-3 },
 * });
 * await trainer.fit(await loadMnist('train'), { epochs: 2, batchSize: 64, seed: 1, test: await loadMnist('test') });
 * const onnx = trainer.exportModel(); // a plain inference model with the trained weights
 */
import { defaultRules } from '../../autodiff/rules/index.js';
import type { RuleTable } from '../../autodiff/types.js';
import type { Dataset } from '../../data/datasets/dataset.js';
import { Graph } from '../../onnx/graph.js';
import { decodeModel, type ModelProto } from '../../onnx/proto.js';
import { tensorFromProto, tensorToProto } from '../../onnx/tensor-proto.js';
import { defaultRuntime } from '../../runtime/default.js';
import type { Runtime, RuntimeSession, SessionOptions } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';
import { buildEvalGraph, buildStepGraph, type StepGraph } from './graph.js';
import { HEAD } from './loss.js';
import { Optimizer, type OptimizerConfig } from './optim.js';
import type { Progress } from './progress.js';

export interface TrainerOptions {
  readonly optimizer: OptimizerConfig;
  /** The weights to train (default: every float32 initializer). */
  readonly weights?: readonly string[];
  readonly runtime?: Runtime;
  /** Options of the step and evaluation sessions (default: the runtime's, i.e. 'disabled' optimisation, all cores). */
  readonly session?: SessionOptions;
  /** VJP rules of the backward pass (default: the exact ones). */
  readonly rules?: RuleTable;
}

/** Where a run stands: everything besides weights and optimiser state that a resumed run needs. */
export interface TrainState {
  /** The epoch in progress, 0-based (between epochs: the number finished). */
  epoch: number;
  /** Batches of that epoch done. */
  batch: number;
  /** Fixed by the first fit: the shuffling seed, batch size and learning-rate decay per epoch. */
  seed?: number;
  batchSize?: number;
  lrDecay?: number;
  /** Sums over the epoch in progress, for its running means. */
  running: { loss: number; correct: number; labels: number };
  history: EpochRecord[];
}

export interface EpochRecord {
  /** 1-based. */
  readonly epoch: number;
  /** Optimiser steps at its end. */
  readonly steps: number;
  /** The learning rate it trained with. */
  readonly lr: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly test?: { readonly loss: number; readonly accuracy: number };
  /** Wall time of the training part (this process's share of it, after a resume) and of the evaluation. */
  readonly seconds: number;
  /** Training throughput over that time. */
  readonly examplesPerSecond: number;
  readonly evalSeconds: number;
}

export interface StepResult {
  /** Mean cross-entropy of the batch. */
  readonly loss: number;
  /** Correct argmax predictions, and the labels counted. */
  readonly correct: number;
  readonly labels: number;
}

export interface Evaluation {
  /** Mean cross-entropy per label. */
  readonly loss: number;
  readonly accuracy: number;
  readonly labels: number;
  /** The argmax prediction for every label, in dataset order (flattened over time for a language model). */
  readonly predictions: Int32Array;
}

export interface FitOptions {
  /** Total epochs: a resumed trainer continues up to this many. */
  readonly epochs: number;
  readonly batchSize: number;
  /** Seed of the per-epoch shuffling. */
  readonly seed: number;
  /** The learning rate is multiplied by this after every epoch (PyTorch's StepLR with step_size 1; default 1). */
  readonly lrDecay?: number;
  /** Evaluated after every epoch. */
  readonly test?: Dataset;
  readonly evalBatchSize?: number;
  /** Stops between steps; the checkpoint (if any) is then saved with the state at that step. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: Progress) => void;
  readonly onEpoch?: (r: EpochRecord) => void;
  /** Called after every epoch, every `everySteps` steps and when stopped. */
  readonly checkpoint?: { readonly save: () => Promise<void>; readonly everySteps?: number };
}

export interface FitResult {
  /** True when the signal stopped the run before `epochs`. */
  readonly stopped: boolean;
  readonly steps: number;
  readonly history: readonly EpochRecord[];
}

interface StepSession {
  readonly session: RuntimeSession;
  readonly graph: StepGraph;
}

const ONE = new Tensor('float32', Float32Array.of(1), []);

export class Trainer {
  /** The input the model reads (`x`, `tokens`). */
  readonly input: string;
  /** Current weights by name; the optimiser updates their data in place. */
  readonly weights: ReadonlyMap<string, Tensor<'float32'>>;
  private readonly params: ReadonlyMap<string, Float32Array>;
  private readonly steps = new Map<string, Promise<StepSession>>();
  private evalSession?: Promise<RuntimeSession>;

  private constructor(
    /** The forward graph as built (its initializers hold the initial weights). */
    readonly forward: Graph,
    readonly weightNames: readonly string[],
    readonly optimizer: Optimizer,
    readonly state: TrainState,
    private readonly runtime: Runtime,
    private readonly options: Omit<TrainerOptions, 'optimizer' | 'runtime'>,
  ) {
    const inputs = forward.inputs;
    if (inputs.length !== 1) throw new Error(`Trainer: the model must read one input, it reads ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
    this.input = inputs[0].name;
    const weights = new Map<string, Tensor<'float32'>>();
    for (const w of weightNames) {
      const t = tensorFromProto(forward.initializers.get(w)!);
      if (t.dtype !== 'float32') throw new Error(`Trainer: weight '${w}' is ${t.dtype}; only float32 weights can be trained`);
      weights.set(w, t as Tensor<'float32'>);
    }
    this.weights = weights;
    this.params = new Map([...weights].map(([k, t]) => [k, t.data]));
  }

  static async create(model: ModelProto | Uint8Array, options: TrainerOptions): Promise<Trainer> {
    const forward = new Graph(model instanceof Uint8Array ? decodeModel(model) : model);
    forward.validate('Trainer');
    const weights = options.weights ?? [...forward.initializers.values()].filter((t) => t.dataType === 1).map((t) => t.name);
    for (const w of weights) if (!forward.initializers.has(w)) throw new Error(`Trainer: the model has no weight (initializer) '${w}'`);
    if (weights.length === 0) throw new Error('Trainer: the model has no float32 initializers to train');
    const sizes = new Map(weights.map((w) => [w, forward.initializers.get(w)!.dims.reduce((a, b) => a * Number(b), 1)]));
    const { optimizer, runtime, ...rest } = options;
    const state: TrainState = { epoch: 0, batch: 0, running: { loss: 0, correct: 0, labels: 0 }, history: [] };
    return new Trainer(forward, weights, new Optimizer(optimizer, sizes), state, runtime ?? (await defaultRuntime()), rest);
  }

  /** One optimiser step on one batch: x as the model's input, y the labels (int64, the logits' shape without classes). */
  async step(batch: { readonly x: Tensor; readonly y: Tensor }): Promise<StepResult> {
    const { session, graph } = await this.stepSession(batch.x, batch.y);
    const out = await session.run({ ...this.weightFeeds(), [this.input]: batch.x, [HEAD.labels]: batch.y, [graph.seed]: ONE }, graph.fetches);
    const grads = new Map(this.weightNames.map((w) => [w, out[graph.grads[w]].data as Float32Array]));
    this.optimizer.step(this.params, grads);
    return { loss: out[HEAD.loss].at(0), correct: out[HEAD.correct].at(0), labels: batch.y.size };
  }

  /** Mean loss, accuracy and predictions over a dataset, in batches, with the current weights. */
  async evaluate(data: Dataset, options: { batchSize?: number; signal?: AbortSignal } = {}): Promise<Evaluation> {
    const session = await (this.evalSession ??= this.runtime.createSession(buildEvalGraph(this.forward, this.weightNames), this.options.session));
    const weights = this.weightFeeds();
    const perExample = data.targetShape.reduce((a, b) => a * b, 1);
    const predictions = new Int32Array(data.size * perExample);
    let loss = 0;
    let correct = 0;
    let labels = 0;
    for (const b of data.batches(options.batchSize ?? 1000)) {
      options.signal?.throwIfAborted();
      const out = await session.run({ ...weights, [this.input]: b.x, [HEAD.labels]: b.y }, [HEAD.loss, HEAD.correct, HEAD.pred]);
      loss += out[HEAD.loss].at(0);
      correct += out[HEAD.correct].at(0);
      const pred = out[HEAD.pred].data as BigInt64Array;
      for (let i = 0; i < pred.length; i++) predictions[labels + i] = Number(pred[i]);
      labels += b.y.size;
    }
    return { loss: loss / Math.max(1, labels), accuracy: correct / Math.max(1, labels), labels, predictions };
  }

  /** Trains until `epochs` epochs are done (continuing from the state: a resumed trainer picks up mid-epoch). */
  async fit(train: Dataset, options: FitOptions): Promise<FitResult> {
    const s = this.state;
    const { epochs, batchSize, seed, lrDecay = 1 } = options;
    if (!Number.isInteger(epochs) || epochs < 0) throw new Error(`fit: epochs must be a non-negative integer, got ${epochs}`);
    if (!(lrDecay > 0 && lrDecay <= 1)) throw new Error(`fit: lrDecay must be in (0, 1], got ${lrDecay}`);
    if (s.seed !== undefined && (s.seed !== seed || s.batchSize !== batchSize || (s.lrDecay ?? 1) !== lrDecay)) {
      throw new Error(
        `fit: this run was started with seed ${s.seed}, batch size ${s.batchSize} and lrDecay ${s.lrDecay ?? 1}; continue it with the same (got ${seed}, ${batchSize}, ${lrDecay})`,
      );
    }
    s.seed = seed;
    s.batchSize = batchSize;
    s.lrDecay = lrDecay;
    const every = options.checkpoint?.everySteps;
    const save = async () => options.checkpoint?.save();
    while (s.epoch < epochs) {
      const batches = train.batches(batchSize, { shuffle: true, seed, epoch: s.epoch });
      this.optimizer.lr = this.optimizer.config.lr * lrDecay ** s.epoch;
      const started = performance.now();
      let examples = 0;
      let k = 0;
      for (const b of batches) {
        if (k++ < s.batch) continue; // done before a resume: the order is the same, so skip them
        if (options.signal?.aborted) {
          await save();
          return { stopped: true, steps: this.optimizer.steps, history: s.history };
        }
        const r = await this.step(b);
        s.batch++;
        s.running.loss += r.loss * r.labels;
        s.running.correct += r.correct;
        s.running.labels += r.labels;
        examples += b.x.shape[0];
        options.onProgress?.({
          epoch: s.epoch + 1,
          epochs,
          batch: s.batch,
          batches: batches.count,
          loss: s.running.loss / s.running.labels,
          accuracy: s.running.correct / s.running.labels,
          examplesPerSecond: examples / ((performance.now() - started) / 1000),
        });
        if (every && this.optimizer.steps % every === 0) await save();
      }
      const seconds = (performance.now() - started) / 1000;
      const evalStart = performance.now();
      const test = options.test ? await this.evaluate(options.test, { batchSize: options.evalBatchSize }) : undefined;
      const record: EpochRecord = {
        epoch: s.epoch + 1,
        steps: this.optimizer.steps,
        lr: this.optimizer.lr,
        trainLoss: s.running.loss / Math.max(1, s.running.labels),
        trainAccuracy: s.running.correct / Math.max(1, s.running.labels),
        test: test && { loss: test.loss, accuracy: test.accuracy },
        seconds,
        examplesPerSecond: examples / seconds,
        evalSeconds: test ? (performance.now() - evalStart) / 1000 : 0,
      };
      s.history.push(record);
      s.epoch++;
      s.batch = 0;
      s.running = { loss: 0, correct: 0, labels: 0 };
      options.onEpoch?.(record);
      await save();
    }
    return { stopped: false, steps: this.optimizer.steps, history: s.history };
  }

  /** The model with the current weights as initializers: a plain inference model. */
  exportModel(): ModelProto {
    const initializer = this.forward.proto.initializer.map((t) => {
      const w = this.weights.get(t.name);
      return w ? tensorToProto(w, t.name) : t;
    });
    return this.forward.withGraph({ initializer }).model;
  }

  /** Releases every session. */
  async dispose(): Promise<void> {
    const sessions = [...(await Promise.all(this.steps.values())).map((s) => s.session), ...(this.evalSession ? [await this.evalSession] : [])];
    this.steps.clear();
    this.evalSession = undefined;
    await Promise.all(sessions.map((s) => s.release()));
  }

  /** @internal Used by checkpoints: a trainer over given weights, optimiser state and counters. */
  static async restore(model: ModelProto, weights: readonly string[], optimizer: Optimizer, state: TrainState, options: Omit<TrainerOptions, 'optimizer'>): Promise<Trainer> {
    const forward = new Graph(model);
    forward.validate('checkpoint');
    const { runtime, ...rest } = options;
    return new Trainer(forward, weights, optimizer, state, runtime ?? (await defaultRuntime()), rest);
  }

  private weightFeeds(): Record<string, Tensor> {
    return Object.fromEntries(this.weights);
  }

  /** The step session for inputs of this shape: built (probe, backward, compile) on first use, then reused. */
  private stepSession(x: Tensor, y: Tensor): Promise<StepSession> {
    const key = `${x.shape.join('x')}|${y.shape.join('x')}`;
    let s = this.steps.get(key);
    if (!s) {
      s = (async () => {
        const graph = await buildStepGraph(this.runtime, this.forward, this.weightNames, { input: this.input, x, y }, this.options.rules ?? defaultRules);
        return { graph, session: await this.runtime.createSession(graph.bytes, this.options.session) };
      })();
      s.catch(() => this.steps.delete(key));
      this.steps.set(key, s);
    }
    return s;
  }
}
