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
import type { Batch, Dataset } from '../../data/datasets/dataset.js';
import { Graph } from '../../onnx/graph.js';
import { decodeModel, type ModelProto } from '../../onnx/proto.js';
import { tensorFromProto, tensorToProto } from '../../onnx/tensor-proto.js';
import { defaultRuntime } from '../../runtime/default.js';
import type { Runtime, RuntimeSession, SessionOptions } from '../../runtime/runtime.js';
import { Tensor } from '../../runtime/tensor.js';
import { buildEvalGraph, buildInputGradGraph, buildStepGraph, type StepGraph } from './graph.js';
import { HEAD } from './loss.js';
import { Optimizer, type OptimizerConfig } from './optim.js';
import type { Progress } from './progress.js';
import type { HostTerm, LossTerm } from './terms.js';

export interface TrainerOptions {
  readonly optimizer: OptimizerConfig;
  /** The weights to train (default: every float32 initializer). */
  readonly weights?: readonly string[];
  readonly runtime?: Runtime;
  /** Options of the step and evaluation sessions (default: the runtime's, i.e. 'disabled' optimisation, all cores). */
  readonly session?: SessionOptions;
  /** VJP rules of the backward pass (default: the exact ones). */
  readonly rules?: RuleTable;
  /** 'classifier' (default): minimise cross-entropy (plus the terms); 'none': the loss terms alone (autoencoders, VAEs). */
  readonly head?: 'classifier' | 'none';
  /** Loss terms computed by the step graph, added to the objective with their weights (terms.ts). */
  readonly terms?: readonly LossTerm[];
  /** Terms computed on the host from the weights: a penalty's gradient before each optimiser step, an update after. */
  readonly hostTerms?: readonly HostTerm[];
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
  /** Sums over the epoch in progress, for its running means (terms: weighted values summed over batches). */
  running: { loss: number; correct: number; labels: number; terms?: Record<string, number>; batches?: number };
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
  /** NaN for a trainer without a classifier head. */
  readonly trainAccuracy: number;
  /** Each loss term's weighted value, averaged over the epoch's batches (when the trainer has terms). */
  readonly terms?: Readonly<Record<string, number>>;
  readonly test?: { readonly loss: number; readonly accuracy: number };
  /** Wall time of the training part (this process's share of it, after a resume) and of the evaluation. */
  readonly seconds: number;
  /** Training throughput over that time. */
  readonly examplesPerSecond: number;
  readonly evalSeconds: number;
}

export interface StepResult {
  /** Mean cross-entropy of the batch (with head 'none': the objective). */
  readonly loss: number;
  /** Correct argmax predictions, and the labels counted (with head 'none': 0, and the batch's examples). */
  readonly correct: number;
  readonly labels: number;
  /** What the step minimised: the loss plus every weighted term. */
  readonly objective: number;
  /** Each term's weighted value (graph terms, then host terms); empty without terms. */
  readonly terms: Readonly<Record<string, number>>;
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
  /** Extra inputs of each batch that the loss terms read (concept labels, masks), by the batch's dataset indices. */
  readonly extra?: (batch: Batch) => Readonly<Record<string, Tensor>>;
  /** Replaces each batch before its step (adversarial training: perturb x with inputGradient). */
  readonly transform?: (batch: Batch, trainer: Trainer) => Promise<Batch>;
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
  private readonly inputGrads = new Map<string, Promise<{ session: RuntimeSession; seed: string; grad: string }>>();
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

  /**
   * One optimiser step on one batch: x as the model's input, y the labels (int64, the logits' shape without classes;
   * ignored with head 'none'), `extra` the inputs the loss terms read.
   */
  async step(batch: { readonly x: Tensor; readonly y: Tensor }, extra: Readonly<Record<string, Tensor>> = {}): Promise<StepResult> {
    const head = this.options.head !== 'none';
    const { session, graph } = await this.stepSession(batch.x, batch.y, extra);
    const feeds: Record<string, Tensor> = { ...this.weightFeeds(), [this.input]: batch.x, [graph.seed]: ONE };
    if (head) feeds[HEAD.labels] = batch.y;
    for (const f of graph.feeds) feeds[f] = extra[f];
    const out = await session.run(feeds, graph.fetches);
    const grads = new Map(this.weightNames.map((w) => [w, out[graph.grads[w]].data as Float32Array]));
    const terms: Record<string, number> = {};
    (this.options.terms ?? []).forEach((t, i) => (terms[t.name] = t.weight * out[graph.terms[i]].at(0)));
    let objective = out[graph.objective].at(0);
    for (const h of this.options.hostTerms ?? []) {
      if (!h.penalty) continue;
      terms[h.name] = h.penalty(this.params, grads);
      objective += terms[h.name];
    }
    if (!Number.isFinite(objective)) throw new Error(`step ${this.optimizer.steps + 1}: the objective is ${objective}; lower the learning rate or the term weights`);
    this.optimizer.step(this.params, grads);
    for (const h of this.options.hostTerms ?? []) h.afterStep?.(this.params, grads, this.optimizer.lr);
    return head
      ? { loss: out[HEAD.loss].at(0), correct: out[HEAD.correct].at(0), labels: batch.y.size, objective, terms }
      : { loss: objective, correct: 0, labels: batch.x.shape[0], objective, terms };
  }

  /**
   * The gradient of the batch's mean cross-entropy with respect to the input, with the current weights (no update):
   * the direction FGSM/PGD steps along in adversarial training.
   */
  async inputGradient(batch: { readonly x: Tensor; readonly y: Tensor }): Promise<{ readonly loss: number; readonly grad: Tensor<'float32'> }> {
    if (this.options.head === 'none') throw new Error("inputGradient: the trainer has head 'none' (no cross-entropy to differentiate)");
    const key = `${batch.x.shape.join('x')}|${batch.y.shape.join('x')}`;
    let s = this.inputGrads.get(key);
    if (!s) {
      s = (async () => {
        const g = await buildInputGradGraph(this.runtime, this.forward, this.weightNames, { input: this.input, x: batch.x, y: batch.y }, this.options.rules ?? defaultRules);
        return { ...g, session: await this.runtime.createSession(g.bytes, this.options.session) };
      })();
      s.catch(() => this.inputGrads.delete(key));
      this.inputGrads.set(key, s);
    }
    const { session, seed, grad } = await s;
    const out = await session.run({ ...this.weightFeeds(), [this.input]: batch.x, [HEAD.labels]: batch.y, [seed]: ONE }, [HEAD.loss, grad]);
    return { loss: out[HEAD.loss].at(0), grad: out[grad] as Tensor<'float32'> };
  }

  /** Mean loss, accuracy and predictions over a dataset, in batches, with the current weights. */
  async evaluate(data: Dataset, options: { batchSize?: number; signal?: AbortSignal } = {}): Promise<Evaluation> {
    if (this.options.head === 'none') throw new Error("evaluate: the trainer has head 'none'; there is no classifier loss or accuracy to evaluate");
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
        const batch = options.transform ? await options.transform(b, this) : b;
        const r = await this.step(batch, options.extra?.(batch) ?? {});
        s.batch++;
        s.running.loss += r.loss * r.labels;
        s.running.correct += r.correct;
        s.running.labels += r.labels;
        if (Object.keys(r.terms).length) {
          const t = (s.running.terms ??= {});
          for (const [k, v] of Object.entries(r.terms)) t[k] = (t[k] ?? 0) + v;
          s.running.batches = (s.running.batches ?? 0) + 1;
        }
        examples += b.x.shape[0];
        options.onProgress?.({
          epoch: s.epoch + 1,
          epochs,
          batch: s.batch,
          batches: batches.count,
          loss: s.running.loss / s.running.labels,
          accuracy: this.options.head === 'none' ? NaN : s.running.correct / s.running.labels,
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
        trainAccuracy: this.options.head === 'none' ? NaN : s.running.correct / Math.max(1, s.running.labels),
        ...(s.running.terms ? { terms: Object.fromEntries(Object.entries(s.running.terms).map(([k, v]) => [k, v / s.running.batches!])) } : {}),
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
    const sessions = [
      ...(await Promise.all(this.steps.values())).map((s) => s.session),
      ...(await Promise.all(this.inputGrads.values())).map((s) => s.session),
      ...(this.evalSession ? [await this.evalSession] : []),
    ];
    this.steps.clear();
    this.inputGrads.clear();
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
  private stepSession(x: Tensor, y: Tensor, extra: Readonly<Record<string, Tensor>>): Promise<StepSession> {
    const shapes = Object.entries(extra).map(([k, t]) => `${k}:${t.shape.join('x')}`);
    const key = [`${x.shape.join('x')}|${y.shape.join('x')}`, ...shapes].join('|');
    let s = this.steps.get(key);
    if (!s) {
      s = (async () => {
        const spec = { head: this.options.head, terms: this.options.terms };
        const graph = await buildStepGraph(this.runtime, this.forward, this.weightNames, { input: this.input, x, y, extra }, this.options.rules ?? defaultRules, spec);
        return { graph, session: await this.runtime.createSession(graph.bytes, this.options.session) };
      })();
      s.catch(() => this.steps.delete(key));
      this.steps.set(key, s);
    }
    return s;
  }
}
