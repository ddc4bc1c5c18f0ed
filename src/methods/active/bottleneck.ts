/**
 * Concept bottleneck models (Koh, Nguyen, Tang, Mussmann, Pierson, Kim, Liang, "Concept Bottleneck Models", ICML
 * 2020): x → k concept logits → sigmoid ĉ → a linear head → y, where ĉ is trained against concept labels with binary
 * cross-entropy (the labels are an extra input fed per batch). Three ways to train it:
 * - independent: x → c on the concept labels; c → y on the TRUE concepts; composed at test time;
 * - sequential: x → c as above, then c → y on the predicted ĉ of the frozen x → c;
 * - joint: one graph minimising CE(y) + λ·BCE(c).
 * Reported: concept accuracy (per concept and mean, against the majority-class rate), task accuracy, test-time
 * intervention (ĉ replaced by the true concepts, one concept more at a time: the paper's claim is that accuracy rises),
 * and leakage (Mahinpei et al. 2021, "Promises and Pitfalls of Black-Box Concept Learning Models"; Margeloiu et al.
 * 2021): how much task information the soft probabilities carry beyond the concepts — probes trained to predict y from
 * soft ĉ, from hard ĉ (thresholded at ½) and from the true concepts; leakage = acc(soft ĉ) − acc(true c). The
 * unregularised twin is the same architecture trained on CE alone (Koh et al.'s "standard model").
 *
 * @example
 * const { data, table } = factorConcepts({ size: 2000, seed: 1, task: 'complete' });
 * const tr = Array.from({ length: 1500 }, (_, i) => i);
 * const te = Array.from({ length: 500 }, (_, i) => 1500 + i);
 * const train = { data: data.subset(tr), table: subsetTable(table, tr) };
 * const test = { data: data.subset(te), table: subsetTable(table, te) };
 * const model = mlp({ inputs: [1, 28, 28], hidden: [64], classes: 4, seed: 1 }); // its last layer becomes the bottleneck
 * const r = await trainConceptBottleneck(model, { train, test, mode: 'joint', lambda: 1, epochs: 4, batchSize: 64, seed: 1 });
 * r.meanConceptAccuracy; r.intervention.accuracy; r.leakage.leakage;
 */
import type { Batch, Dataset } from '../../data/datasets/dataset.js';
import { mulberry32 } from '../../data/datasets/random.js';
import { defaultBound, uniform } from '../../model/builders/init.js';
import { mlp } from '../../model/builders/mlp.js';
import { Net } from '../../model/builders/net.js';
import { Model } from '../../model/model.js';
import { Trainer, type LossTerm, type OptimizerConfig } from '../../model/train/index.js';
import { Graph } from '../../onnx/graph.js';
import { attr, encodeModel, getAttr, makeNode, type ModelProto, type TensorProto } from '../../onnx/proto.js';
import { tensorToProto } from '../../onnx/tensor-proto.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { active, RAUKER_INTRINSIC, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { conceptRows, rowsDataset, type ConceptTable } from './concept-data.js';
import { testAccuracy, trainRun, type Regularizer, type TrainedRun } from './twin.js';

/** Sites of the bottleneck: the concept logits, the probabilities ĉ, and the feed of concept labels. */
export const CONCEPT_LOGITS = 'concepts.gemm';
export const CONCEPT_PROBS = 'concepts.sigmoid';
export const CONCEPT_FEED = 'concepts';

/**
 * The model with its last layer (a Gemm writing the output, as the mlp and cnn builders end) replaced by a bottleneck:
 * features → `concepts` Gemm (k logits) → Sigmoid → `head` Gemm (classes). Weights `concepts.*`, `head.*` start as
 * nn.Linear does, from `seed`.
 */
export function bottleneckModel(model: ModelProto, concepts: number, seed = 0): ModelProto {
  if (!Number.isInteger(concepts) || concepts < 1) throw new Error(`bottleneckModel: concepts must be a positive integer, got ${concepts}`);
  const g = new Graph(model);
  if (g.outputs.length !== 1) throw new Error(`bottleneckModel: the model must have one output, it has ${g.outputs.length}`);
  const out = g.outputs[0].name;
  const last = g.producerOf(out);
  const w = last && g.initializers.get(last.input[1]);
  if (!last || last.opType !== 'Gemm' || !w || w.dims.length !== 2 || getAttr(last, 'transB')?.i !== 1n || (last.input[2] && !g.initializers.has(last.input[2]))) {
    throw new Error(`bottleneckModel: the output '${out}' must be written by a Gemm with an initializer weight [classes, features] and transB = 1 (the last layer of the mlp and cnn builders); it is written by ${last ? `${last.opType} '${last.name}'` : 'no node'}`);
  }
  const [classes, features] = w.dims.map(Number);
  const rand = mulberry32(seed ^ 0xc0ce);
  const p = (name: string, shape: number[], fanIn: number) => tensorToProto(uniform(rand, shape, defaultBound(fanIn)), name);
  const weights = [p('concepts.weight', [concepts, features], features), p('concepts.bias', [concepts], features), p('head.weight', [classes, concepts], concepts), p('head.bias', [classes], concepts)];
  for (const t of weights) if (g.initializers.has(t.name)) throw new Error(`bottleneckModel: the model already has a weight '${t.name}'`);
  const logits = '/concepts/Gemm_output_0';
  const probs = '/concepts/Sigmoid_output_0';
  const nodes = [
    makeNode('Gemm', [last.input[0], 'concepts.weight', 'concepts.bias'], [logits], { name: '/concepts/Gemm', attributes: [attr('transB', { int: 1 })] }),
    makeNode('Sigmoid', [logits], [probs], { name: '/concepts/Sigmoid' }),
    makeNode('Gemm', [probs, 'head.weight', 'head.bias'], [out], { name: '/head/Gemm', attributes: [attr('transB', { int: 1 })] }),
  ];
  const dropped = new Set(last.input.slice(1));
  const initializer = [...g.proto.initializer.filter((t) => !dropped.has(t.name)), ...weights];
  return g.withGraph({ node: [...g.nodes.filter((n) => n !== last), ...nodes], initializer }).model;
}

/** Mean binary cross-entropy of the concept logits z against the fed labels c: mean(softplus(z) − c·z) (stable). */
export function conceptLoss(weight: number, options: { site?: string; feed?: string; concepts?: number } = {}): LossTerm {
  const site = options.site ?? CONCEPT_LOGITS;
  return {
    name: 'concept-bce',
    weight,
    build(b) {
      const z = b.site(site);
      const shape = b.info(z).shape;
      const k = options.concepts ?? Number(shape?.[1]);
      if (!(k >= 1)) throw new Error(`conceptLoss: site '${site}' must be [N, concepts], it is [${shape?.join(', ') ?? '?'}]`);
      const c = b.feed(options.feed ?? CONCEPT_FEED, 'float32', ['N', k]);
      const bce = b.op('Sub', [b.op('Softplus', [z]), b.op('Mul', [c, z])]);
      return b.op('ReduceMean', [bce], [attr('keepdims', { int: 0 })]);
    },
  };
}

/**
 * For `glassbox train --concepts FILE` (joint training): the bottleneck model built on `model`'s last layer, the concept
 * loss with weight λ (default 1), and the feed of each batch's concept rows. CLI: `--concepts FILE [--concept-weight λ]`
 * → `conceptBottleneckRegularizer(recipeModel, parseConceptTable(text, FILE), { lambda })`, trained with its `model`.
 */
export function conceptBottleneckRegularizer(model: ModelProto, table: ConceptTable, options: { lambda?: number; seed?: number } = {}): Regularizer {
  const lambda = options.lambda ?? 1;
  if (!(lambda >= 0) || !Number.isFinite(lambda)) throw new Error(`concept bottleneck: lambda must be a finite number ≥ 0, got ${lambda}`);
  const k = table.names.length;
  return {
    model: bottleneckModel(model, k, options.seed),
    terms: [conceptLoss(lambda, { concepts: k })],
    extra: (b: Batch) => ({ [CONCEPT_FEED]: conceptRows(table, b.indices) }),
  };
}

export type BottleneckMode = 'independent' | 'sequential' | 'joint';

/** A dataset and the concept table aligned with it (row i = example i). */
export interface Labelled {
  readonly data: Dataset<'float32'>;
  readonly table: ConceptTable;
}

export interface BottleneckOptions {
  readonly train: Labelled;
  readonly test: Labelled;
  readonly mode: BottleneckMode;
  /** Joint mode's concept-loss weight (default 1). */
  readonly lambda?: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly seed: number;
  /** Default Adam, lr 1e-2 (the twin's default). */
  readonly optimizer?: OptimizerConfig;
  /** The standard model (same architecture, CE only) trained with these options, shared between modes. */
  readonly twin?: TrainedRun;
  /** Epochs of the c → y head in independent and sequential modes (default 20: it is a small linear model). */
  readonly headEpochs?: number;
  /** Epochs of each leakage probe (default 20; 0 skips the probes). */
  readonly probeEpochs?: number;
}

export interface Leakage {
  /** Held-out task accuracy of an MLP probe from soft ĉ, from hard ĉ (> ½), and from the true concepts. */
  readonly soft: number;
  readonly hard: number;
  readonly trueConcepts: number;
  /** soft − trueConcepts: task information in ĉ beyond the concepts themselves. */
  readonly leakage: number;
  /** soft − hard: what the probabilities add to their thresholded values. */
  readonly softOverHard: number;
}

export interface ConceptBottleneck {
  readonly method: 'concept-bottleneck';
  readonly taxonomy: Taxonomy;
  readonly mode: BottleneckMode;
  readonly concepts: readonly string[];
  /** Test accuracy of each concept (ĉ > ½ vs the label), and the majority-class rate of each. */
  readonly conceptAccuracy: readonly number[];
  readonly conceptBaseline: readonly number[];
  readonly meanConceptAccuracy: number;
  readonly taskAccuracy: number;
  /** The model's own head fed hard ĉ (thresholded at ½) instead of soft. */
  readonly hardTaskAccuracy: number;
  /** accuracy[m]: task accuracy with the first m concepts (table order) replaced by their true values. */
  readonly intervention: { readonly accuracy: readonly number[] };
  readonly leakage?: Leakage;
  readonly twinAccuracy: number;
  /** Twin accuracy − this model's. */
  readonly accuracyCost: number;
  readonly proto: ModelProto;
  readonly model: Model;
  readonly twin: TrainedRun;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

const DEFAULT_OPTIMIZER: OptimizerConfig = { kind: 'adam', lr: 1e-2 };

/** Trains a concept bottleneck on `model`'s last layer in one of the three modes and measures it (see module doc). */
export async function trainConceptBottleneck(model: ModelProto, options: BottleneckOptions): Promise<ConceptBottleneck> {
  const t0 = performance.now();
  const { train, test, mode, epochs, batchSize, seed } = options;
  const optimizer = options.optimizer ?? DEFAULT_OPTIMIZER;
  const lambda = options.lambda ?? 1;
  if (!['independent', 'sequential', 'joint'].includes(mode)) throw new Error(`concept bottleneck: mode must be independent, sequential or joint, got '${String(mode)}'`);
  for (const [what, l] of [['train', train], ['test', test]] as const) {
    if (l.table.size !== l.data.size) throw new Error(`concept bottleneck: the ${what} concept table has ${l.table.size} rows for ${l.data.size} examples`);
  }
  if (test.table.names.join() !== train.table.names.join()) throw new Error('concept bottleneck: the train and test tables name different concepts');
  const k = train.table.names.length;
  const classes = train.data.numClasses;
  if (!classes) throw new Error(`concept bottleneck: dataset ${train.data.name} does not say how many classes it has`);
  if (!train.data.labels || !test.data.labels) throw new Error(`concept bottleneck: datasets ${train.data.name} and ${test.data.name} must list their class labels`);
  const reg = conceptBottleneckRegularizer(model, train.table, { lambda, seed });
  const cbm = reg.model!;
  const fit = { epochs, batchSize, seed };
  const twin = options.twin ?? (await trainRun(cbm, null, { train: train.data, test: test.data, ...fit, optimizer }));

  let proto: ModelProto;
  if (mode === 'joint') {
    proto = (await trainRun(cbm, reg, { train: train.data, test: test.data, ...fit, optimizer })).proto;
  } else {
    // x → c: the encoder alone, on the concept loss.
    const headWeights = ['head.weight', 'head.bias'];
    const encoder = new Graph(cbm).proto.initializer.filter((t) => t.dataType === 1 && !headWeights.includes(t.name)).map((t) => t.name);
    const xc = await Trainer.create(cbm, { optimizer, weights: encoder, head: 'none', terms: [conceptLoss(1, { concepts: k })] });
    await xc.fit(train.data, { ...fit, extra: reg.extra });
    const concepts = xc.exportModel();
    await xc.dispose();
    // c → y: a head-only model with the bottleneck's initial head weights, trained on the TRUE concepts (independent)
    // or on the frozen encoder's ĉ over the training set (sequential: the same as training the head behind the frozen
    // encoder, without running the encoder every step).
    let rows: Float32Array;
    if (mode === 'sequential') {
      const frozen = await Model.load(encodeModel(concepts));
      rows = await conceptProbabilities(frozen, train.data);
      await frozen.dispose();
    } else rows = new Float32Array(train.table.values);
    const head = withWeights(headModel(k, classes), new Graph(cbm).proto.initializer.filter((t) => headWeights.includes(t.name)));
    const cy = await Trainer.create(head, { optimizer });
    await cy.fit(rowsDataset(mode === 'sequential' ? 'predicted concepts' : 'true concepts', rows, k, train.data.labels!, classes), { ...fit, epochs: options.headEpochs ?? 20 });
    proto = withWeights(concepts, [...cy.weights].map(([n, t]) => tensorToProto(t, n)));
    await cy.dispose();
  }
  const loaded = await Model.load(encodeModel(proto));
  const ev = await evaluateBottleneck(loaded, test);
  const probeEpochs = options.probeEpochs ?? 20;
  const leakage = probeEpochs > 0 ? await measureLeakage(loaded, train, test, { epochs: probeEpochs, batchSize, seed }) : undefined;
  const accuracyCost = twin.accuracy - ev.taskAccuracy;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const base = mean(ev.conceptBaseline);
  const iv = ev.intervention;
  const checks: Check[] = [
    { name: 'concept accuracy vs majority rate', value: ev.meanConceptAccuracy, passed: ev.meanConceptAccuracy > base, detail: `mean test concept accuracy ${pct(ev.meanConceptAccuracy)} vs ${pct(base)} always predicting each concept's majority value (${train.table.names.map((n, j) => `${n} ${pct(ev.conceptAccuracy[j])}`).join(', ')})` },
    { name: 'test-time intervention', value: iv.accuracy[k] - iv.accuracy[0], passed: iv.accuracy[k] >= iv.accuracy[0], detail: `task accuracy ${iv.accuracy.map(pct).join(' → ')} as 0…${k} concepts are set to their true values` },
    { name: 'accuracy cost', value: accuracyCost, detail: `test accuracy ${pct(ev.taskAccuracy)} (${mode}${mode === 'joint' ? `, λ ${lambda}` : ''}) vs ${pct(twin.accuracy)} for the standard model (same architecture, CE only)` },
    { name: 'own head on hard concepts', value: ev.taskAccuracy - ev.hardTaskAccuracy, detail: `task accuracy ${pct(ev.taskAccuracy)} from soft ĉ, ${pct(ev.hardTaskAccuracy)} with ĉ thresholded at ½` },
  ];
  if (leakage) {
    checks.push({ name: 'leakage', value: leakage.leakage, detail: `probes predicting y on held-out data: ${pct(leakage.soft)} from soft ĉ, ${pct(leakage.hard)} from hard ĉ, ${pct(leakage.trueConcepts)} from the true concepts (leakage = soft − true = ${pct(leakage.leakage)})` });
  }
  return {
    method: 'concept-bottleneck',
    taxonomy: CONCEPT_BOTTLENECK_METHODS['concept-bottleneck'].info.taxonomy,
    mode,
    concepts: train.table.names,
    ...ev,
    leakage,
    twinAccuracy: twin.accuracy,
    accuracyCost,
    proto,
    model: loaded,
    twin,
    checks,
    params: { mode, lambda: mode === 'joint' ? lambda : undefined, epochs, headEpochs: mode === 'joint' ? undefined : (options.headEpochs ?? 20), batchSize, seed, optimizer, probeEpochs, concepts: k, train: train.data.name, test: test.data.name },
    ms: performance.now() - t0,
  };
}

/** input `x` [N, k] → Gemm `head` → logits: the c → y part alone. */
function headModel(k: number, classes: number): ModelProto {
  const net = new Net(0);
  net.linear('head', 'x', k, classes, 'logits');
  return net.model({ name: 'concept-head', doc: 'concepts → task', input: { name: 'x', dtype: 'float32', shape: ['N', k] }, output: { name: 'logits', shape: ['N', classes] } });
}

/** The model with these initializers replaced (by name; each must exist). */
function withWeights(model: ModelProto, weights: readonly TensorProto[]): ModelProto {
  const g = new Graph(model);
  const byName = new Map(weights.map((t) => [t.name, t]));
  for (const n of byName.keys()) if (!g.initializers.has(n)) throw new Error(`concept bottleneck: no weight '${n}' to replace`);
  return g.withGraph({ initializer: g.proto.initializer.map((t) => byName.get(t.name) ?? t) }).model;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Soft concept probabilities of every example, streamed, [n·k]. */
export async function conceptProbabilities(model: Model, data: Dataset<'float32'>, batchSize = 256): Promise<Float32Array> {
  const input = model.inputs[0].name;
  const k = Number(model.site(CONCEPT_PROBS).shape?.[1]);
  const out = new Float32Array(data.size * k);
  let row = 0;
  for (const b of data.batches(batchSize)) {
    const probs = (await model.run({ [input]: b.x }, { capture: [CONCEPT_PROBS] })).captures[CONCEPT_PROBS];
    out.set(probs.data as Float32Array, row * k);
    row += b.x.shape[0];
  }
  return out;
}

/** Concept accuracy, task accuracy (soft and hard ĉ) and the intervention curve of a bottleneck model on labelled data. */
export async function evaluateBottleneck(model: Model, test: Labelled, batchSize = 256) {
  const { table, data } = test;
  const k = table.names.length;
  const input = model.inputs[0].name;
  const output = model.outputs[0].name;
  const site = model.site(CONCEPT_PROBS); // names the nearest sites when the model has no bottleneck
  if (Number(site.shape?.[1]) !== k) throw new Error(`evaluateBottleneck: the model has ${String(site.shape?.[1])} concepts, the table ${k}`);
  const conceptCorrect = new Float64Array(k);
  const positives = new Float64Array(k);
  const intervened = new Float64Array(k + 1);
  let hardCorrect = 0;
  const correct = (logits: Tensor, y: Tensor) => {
    const c = logits.shape[1];
    const d = logits.data as Float32Array;
    let n = 0;
    for (let i = 0; i < y.size; i++) {
      let arg = 0;
      for (let j = 1; j < c; j++) if (d[i * c + j] > d[i * c + arg]) arg = j;
      if (arg === y.at(i)) n++;
    }
    return n;
  };
  for (const b of data.batches(batchSize)) {
    const truth = conceptRows(table, b.indices);
    const r = await model.run({ [input]: b.x }, { capture: [CONCEPT_PROBS] });
    const probs = r.captures[CONCEPT_PROBS].data as Float32Array;
    for (let i = 0; i < probs.length; i++) {
      conceptCorrect[i % k] += (probs[i] > 0.5 ? 1 : 0) === truth.data[i] ? 1 : 0;
      positives[i % k] += truth.data[i];
    }
    intervened[0] += correct(r.outputs[output], b.y);
    const hard = Tensor.float32(Array.from(probs, (p) => (p > 0.5 ? 1 : 0)), truth.shape);
    hardCorrect += correct((await model.run({ [input]: b.x }, { interventions: [{ kind: 'set', site: CONCEPT_PROBS, value: hard }] })).outputs[output], b.y);
    for (let m = 1; m <= k; m++) {
      const units = Array.from({ length: m }, (_, j) => j);
      intervened[m] += correct((await model.run({ [input]: b.x }, { interventions: [{ kind: 'set', site: CONCEPT_PROBS, value: truth, units }] })).outputs[output], b.y);
    }
  }
  const n = Math.max(1, data.size);
  const conceptAccuracy = Array.from(conceptCorrect, (c) => c / n);
  return {
    conceptAccuracy,
    conceptBaseline: Array.from(positives, (p) => Math.max(p, n - p) / n),
    meanConceptAccuracy: mean(conceptAccuracy),
    taskAccuracy: intervened[0] / n,
    hardTaskAccuracy: hardCorrect / n,
    intervention: { accuracy: Array.from(intervened, (c) => c / n) },
  };
}

/**
 * Leakage probes: an MLP (32 hidden units) trained to predict y from soft ĉ, from hard ĉ and from the true concepts of
 * the training set, scored on the test set. Probes share architecture, seed and epochs, so the differences are the
 * information in their inputs.
 */
export async function measureLeakage(model: Model, train: Labelled, test: Labelled, options: { epochs: number; batchSize: number; seed: number }): Promise<Leakage> {
  const k = train.table.names.length;
  const classes = train.data.numClasses!;
  const [softTrain, softTest] = [await conceptProbabilities(model, train.data), await conceptProbabilities(model, test.data)];
  const hard = (p: Float32Array) => p.map((v) => (v > 0.5 ? 1 : 0));
  const probe = async (name: string, xTrain: Float32Array, xTest: Float32Array) => {
    const trainer = await Trainer.create(mlp({ inputs: k, hidden: [32], classes, seed: options.seed }), { optimizer: { kind: 'adam', lr: 1e-2 } });
    try {
      await trainer.fit(rowsDataset(`${name} (train)`, xTrain, k, train.data.labels!, classes), options);
      const probeModel = await Model.load(encodeModel(trainer.exportModel()));
      const { accuracy } = await testAccuracy(probeModel, rowsDataset(`${name} (test)`, xTest, k, test.data.labels!, classes));
      await probeModel.dispose();
      return accuracy;
    } finally {
      await trainer.dispose();
    }
  };
  const soft = await probe('soft ĉ', softTrain, softTest);
  const hardAcc = await probe('hard ĉ', hard(softTrain), hard(softTest));
  const trueConcepts = await probe('true c', new Float32Array(train.table.values), new Float32Array(test.table.values));
  return { soft, hard: hardAcc, trueConcepts, leakage: soft - trueConcepts, softOverHard: soft - hardAcc };
}

export const CONCEPT_BOTTLENECK_METHODS = {
  'concept-bottleneck': {
    info: {
      title: 'Concept bottleneck model (independent, sequential, joint)',
      reference: 'Koh, Nguyen, Tang, Mussmann, Pierson, Kim, Liang 2020, Concept Bottleneck Models',
      taxonomy: active('hidden semantics', 'global', RAUKER_INTRINSIC.selfExplaining),
    },
    run: trainConceptBottleneck,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
