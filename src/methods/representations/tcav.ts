/**
 * Concept activation vectors and TCAV (Kim, Wattenberg, Gilmer, Cai, Wexler, Viégas, Sayres, "Interpretability
 * Beyond Feature Attribution: Quantitative Testing with Concept Activation Vectors", ICML 2018).
 *
 * A CAV is the unit normal of a linear classifier (L2-regularised logistic regression, fitted here on the host)
 * separating a site's activations of concept examples from those of random examples, pointing towards the concept.
 * The TCAV score of a class is the fraction of its inputs whose directional derivative ∇_site logit_target · CAV is
 * positive. Repeated against ≥ 10 random counter-sets and compared, by a two-sided t-test, with the scores of CAVs
 * trained on random vs random sets; Bonferroni over the concepts tested.
 *
 * @example
 * const r = await tcav(model, { site: 'c2.relu', concept: stripes, randoms, target: 3, inputs: threes, seed: 1 });
 * r.mean; r.p; r.pCorrected; r.significant;
 */
import { logSumExp } from '../../util/softmax.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Dataset } from '../../data/datasets/dataset.js';
import { mixSeed, permutation } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import type { Check } from '../attribution/explanation.js';
import { passive, RAUKER_V, type MethodInfo } from '../taxonomy.js';
import { bonferroni, sampleStd, tTest } from './stats.js';
import { ace } from './ace.js';

/** Examples as one batch [N, ...] or a dataset streamed in batches. */
export type Examples = Tensor<'float32'> | Dataset<'float32'>;

/** Activations of n examples at a site, flattened to d values each (row-major n × d). */
export interface Activations {
  readonly data: Float64Array;
  readonly n: number;
  readonly d: number;
}

const BATCH = 64;

function exampleShape(x: Examples): readonly number[] {
  return x instanceof Tensor ? x.shape.slice(1) : x.inputShape;
}

function count(x: Examples): number {
  return x instanceof Tensor ? x.shape[0] : x.size;
}

function* batchesOf(x: Examples, batchSize: number): Generator<Tensor<'float32'>> {
  if (!(x instanceof Tensor)) {
    for (const b of x.batches(batchSize)) yield b.x;
    return;
  }
  const n = x.shape[0];
  const row = x.size / Math.max(1, n);
  for (let s = 0; s < n; s += batchSize) {
    const e = Math.min(n, s + batchSize);
    yield Tensor.float32((x.data as Float32Array).slice(s * row, e * row), [e - s, ...x.shape.slice(1)]);
  }
}

function checkFinite(t: Tensor, what: string, offset: number): void {
  const data = t.data as Float32Array;
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) throw new Error(`${what}: value ${offset + i} is ${data[i]}, not finite`);
}

/** Checks a set of examples before any compute: float32, at least `min` of them, the model's input shape, finite. */
export function checkExamples(model: Model, x: Examples, what: string, min = 2): void {
  if (x instanceof Tensor && x.dtype !== 'float32') throw new Error(`${what}: expected float32 examples, got ${x.dtype}`);
  if (x instanceof Tensor && x.rank < 1) throw new Error(`${what}: expected examples [N, ...], got a scalar`);
  const n = count(x);
  if (n < min) throw new Error(`${what}: need at least ${min} examples, got ${n}`);
  const dims = model.inputs[0]?.shape;
  const shape = exampleShape(x);
  if (dims && dims.length === shape.length + 1) {
    const bad = shape.findIndex((s, i) => typeof dims[i + 1] === 'number' && (dims[i + 1] as number) > 0 && dims[i + 1] !== s);
    if (bad >= 0) throw new Error(`${what}: examples [${shape.join(', ')}] do not fit input '${model.inputs[0].name}' [${dims.join(', ')}] (axis ${bad + 1})`);
  } else if (dims && dims.length !== shape.length + 1) {
    throw new Error(`${what}: examples [${shape.join(', ')}] do not fit input '${model.inputs[0].name}' of rank ${dims.length}`);
  }
  if (x instanceof Tensor) checkFinite(x, what, 0);
}

/** A site's activations of a set of examples, streamed in batches. */
export async function siteActivations(model: Model, site: string, x: Examples, batchSize = BATCH): Promise<Activations> {
  model.site(site);
  const input = model.inputs[0].name;
  const rows: Float64Array[] = [];
  let d = -1;
  let n = 0;
  for (const b of batchesOf(x, batchSize)) {
    checkFinite(b, `activations of '${site}'`, n * (b.size / Math.max(1, b.shape[0])));
    const a = (await model.run({ [input]: b }, { capture: [site] })).captures[site];
    const bd = a.size / Math.max(1, b.shape[0]);
    if (d >= 0 && bd !== d) throw new Error(`activations of '${site}': ${bd} values per example in one batch, ${d} in another`);
    d = bd;
    rows.push(Float64Array.from(a.data as Float32Array));
    n += b.shape[0];
  }
  const data = new Float64Array(n * Math.max(0, d));
  let o = 0;
  for (const r of rows) {
    data.set(r, o);
    o += r.length;
  }
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) throw new Error(`activations of '${site}': example ${Math.floor(i / d)} has a non-finite value`);
  return { data, n, d };
}

export interface CavOptions {
  readonly seed?: number;
  /** L2 penalty on the weights, on the mean loss of standardised activations (default 0.001). */
  readonly l2?: number;
  /** Fraction of each set held out to measure accuracy (default 0.25). */
  readonly holdout?: number;
  /** Gradient steps (Nesterov) of the logistic regression (default 500). */
  readonly iterations?: number;
}

/** A concept activation vector. */
export interface Cav {
  /** Unit normal of the separating hyperplane in the site's (flattened) activation space, towards the concept. */
  readonly vector: Float64Array;
  /** Accuracy on the held-out examples of both sets. */
  readonly accuracy: number;
  readonly trainAccuracy: number;
  readonly checks: readonly Check[];
}

/**
 * The CAV of two activation sets (positive: concept, negative: random) on the host: balanced logistic regression
 * on activations centred and isotropically scaled (neither changes the normal's direction).
 */
export function fitCav(pos: Activations, neg: Activations, options: CavOptions = {}): Cav {
  if (pos.d !== neg.d) throw new Error(`fitCav: concept activations have ${pos.d} values per example, random ones ${neg.d}`);
  const l2 = options.l2 ?? 1e-3;
  const holdout = options.holdout ?? 0.25;
  const iterations = options.iterations ?? 500;
  if (!(l2 >= 0) || !Number.isFinite(l2)) throw new Error(`fitCav: l2 must be a finite number ≥ 0, got ${l2}`);
  if (!(holdout > 0 && holdout < 1)) throw new Error(`fitCav: holdout must be in (0, 1), got ${holdout}`);
  if (!Number.isInteger(iterations) || iterations < 1) throw new Error(`fitCav: iterations must be a positive integer, got ${iterations}`);
  for (const [set, name] of [[pos, 'concept'], [neg, 'random']] as const) {
    if (set.n < 2) throw new Error(`fitCav: the ${name} set needs at least 2 examples, got ${set.n}`);
  }
  const d = pos.d;
  const seed = options.seed ?? 0;
  // Stratified split: the first ⌈holdout·n⌉ of a seeded permutation of each set are held out.
  const split = (set: Activations, label: number, salt: number) => {
    const order = permutation(set.n, mixSeed(seed, salt));
    const k = Math.min(set.n - 1, Math.max(1, Math.round(holdout * set.n)));
    return { test: Array.from(order.subarray(0, k), (i) => [set, i, label] as const), train: Array.from(order.subarray(k), (i) => [set, i, label] as const) };
  };
  const a = split(pos, 1, 1);
  const b = split(neg, 0, 2);
  const train = [...a.train, ...b.train];
  const test = [...a.test, ...b.test];
  // Centre on the training mean and scale so that the mean squared norm is 1.
  const mu = new Float64Array(d);
  for (const [s, i] of train) for (let j = 0; j < d; j++) mu[j] += s.data[i * d + j] / train.length;
  let sq = 0;
  for (const [s, i] of train) for (let j = 0; j < d; j++) sq += (s.data[i * d + j] - mu[j]) ** 2;
  const scale = sq > 0 ? 1 / Math.sqrt(sq / train.length) : 1;
  const X = new Float64Array(train.length * d);
  train.forEach(([s, i], r) => {
    for (let j = 0; j < d; j++) X[r * d + j] = (s.data[i * d + j] - mu[j]) * scale;
  });
  const y = train.map(([, , l]) => l);
  const wPos = 0.5 / a.train.length;
  const wNeg = 0.5 / b.train.length;
  const sw = y.map((l) => (l ? wPos : wNeg)); // each class weighs one half
  // Nesterov-accelerated gradient descent; the loss is (0.25 + l2)-smooth in these units. Started at 0, every
  // iterate stays in the row space of X (w = Xᵀβ: the gradient Xᵀe + l2·w is one), so the descent runs on β with the
  // n × n Gram matrix K = XXᵀ — the same iterates as in d dimensions, at n²/(n·d) of the cost (n ≪ d for CAVs).
  const lr = 1 / (0.25 + l2);
  const n = y.length;
  const K = new Float64Array(n * n);
  for (let r = 0; r < n; r++) {
    for (let c = r; c < n; c++) {
      let k = 0;
      for (let j = 0; j < d; j++) k += X[r * d + j] * X[c * d + j];
      K[r * n + c] = k;
      K[c * n + r] = k;
    }
  }
  let beta = new Float64Array(n + 1); // coefficients of the rows, then the bias
  let prev = new Float64Array(n + 1);
  const e = new Float64Array(n);
  for (let it = 1; it <= iterations; it++) {
    const mom = (it - 1) / (it + 2);
    const v = beta.map((bi, j) => bi + mom * (bi - prev[j]));
    let gBias = 0;
    for (let r = 0; r < n; r++) {
      let z = v[n];
      for (let c = 0; c < n; c++) z += K[r * n + c] * v[c];
      e[r] = sw[r] * (1 / (1 + Math.exp(-z)) - y[r]);
      gBias += e[r];
    }
    prev = beta;
    beta = v.map((vi, j) => (j < n ? vi - lr * (e[j] + l2 * vi) : vi - lr * gBias));
  }
  const w = new Float64Array(d + 1);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) w[j] += beta[r] * X[r * d + j];
  w[d] = beta[n];
  const margin = (s: Activations, i: number) => {
    let z = w[d];
    for (let j = 0; j < d; j++) z += w[j] * (s.data[i * d + j] - mu[j]) * scale;
    return z;
  };
  const acc = (rows: (readonly [Activations, number, number])[]) => rows.filter(([s, i, l]) => (margin(s, i) > 0 ? 1 : 0) === l).length / rows.length;
  const norm = Math.hypot(...w.subarray(0, d));
  if (!(norm > 0)) throw new Error('fitCav: the classifier has zero weights; the concept and random activations do not differ');
  const vector = Float64Array.from(w.subarray(0, d), (v) => v / norm);
  const accuracy = acc(test);
  const trainAccuracy = acc(train);
  return {
    vector,
    accuracy,
    trainAccuracy,
    checks: [{ name: 'cav held-out accuracy', value: accuracy, passed: accuracy >= 0.7, detail: `logistic regression on ${train.length} examples, ${test.length} held out (train accuracy ${trainAccuracy.toFixed(3)}); a CAV below 0.7 does not capture the concept` }],
  };
}

/** The CAV of concept vs random examples at a site (Kim et al. 2018, §3.1). */
export async function cav(model: Model, site: string, concept: Examples, random: Examples, options: CavOptions = {}): Promise<Cav & { readonly site: string }> {
  model.site(site);
  checkExamples(model, concept, 'cav: concept examples');
  checkExamples(model, random, 'cav: random examples');
  const [pos, neg] = [await siteActivations(model, site, concept), await siteActivations(model, site, random)];
  return { site, ...fitCav(pos, neg, options) };
}

/**
 * What the directional derivative differentiates: 'logit' is the paper's h_k (seed: one-hot of the target);
 * 'log-probability' is log softmax_k, what the reference implementation differentiates (its cross-entropy loss) and
 * invariant to a shift of all logits (seed: one-hot − softmax, held constant, so Σ seed·∇logits = ∇ log p_k).
 */
export type TcavScore = 'logit' | 'log-probability';

/** ∇_site of the target's score for each input, flattened (n × d), from seeded gradients streamed in batches. */
export async function targetGradients(model: Model, site: string, inputs: Examples, target: number, score: TcavScore = 'log-probability', batchSize = BATCH): Promise<Activations> {
  model.site(site);
  const input = model.inputs[0].name;
  const out = model.outputs[0].name;
  const rows: Float64Array[] = [];
  let [n, d] = [0, -1];
  for (const b of batchesOf(inputs, batchSize)) {
    const rowsHere = b.shape[0];
    const logits = (await model.run({ [input]: b })).outputs[out];
    if (logits.rank !== 2) throw new Error(`tcav: output '${out}' is [${logits.shape.join(', ')}]; class targets need logits [N, classes]`);
    const classes = logits.shape[1];
    if (!Number.isInteger(target) || target < 0 || target >= classes) throw new Error(`tcav: target class must be an integer in [0, ${classes}), got ${target}`);
    const seed = new Float32Array(rowsHere * classes);
    const l = logits.data as Float32Array;
    for (let i = 0; i < rowsHere; i++) {
      seed[i * classes + target] = 1;
      if (score === 'logit') continue;
      const lse = logSumExp(l, i * classes, classes);
      for (let j = 0; j < classes; j++) seed[i * classes + j] -= Math.exp(l[i * classes + j] - lse);
    }
    const g = (await model.grad({ [input]: b }, { of: out, wrt: [site], seed: Tensor.float32(seed, [rowsHere, classes]) })).grads[site];
    d = g.size / Math.max(1, rowsHere);
    rows.push(Float64Array.from(g.data as Float32Array));
    n += rowsHere;
  }
  const data = new Float64Array(n * d);
  let o = 0;
  for (const r of rows) {
    data.set(r, o);
    o += r.length;
  }
  return { data, n, d };
}

export interface TcavOptions extends CavOptions {
  readonly site: string;
  /** Examples of the concept. */
  readonly concept: Examples;
  /** Random counter-sets (at least 2; the paper uses ≥ 10). */
  readonly randoms: readonly Examples[];
  readonly target: number;
  /** The target's score differentiated (default 'log-probability'; 'logit' is the paper's h_k). */
  readonly score?: TcavScore;
  /** Inputs of the target class whose directional derivatives are counted. */
  readonly inputs: Examples;
  /** Concepts tested in the family, for Bonferroni (default 1). */
  readonly tests?: number;
  /** Significance level after correction (default 0.05). */
  readonly alpha?: number;
}

export interface TcavResult {
  readonly method: 'tcav';
  readonly site: string;
  readonly target: number;
  /** TCAV score (fraction of inputs with a positive directional derivative) of each concept-vs-random_i CAV. */
  readonly scores: readonly number[];
  /** Mean directional derivative (the magnitude version) of each concept CAV. */
  readonly magnitudes: readonly number[];
  /** Held-out accuracy of each concept CAV. */
  readonly cavAccuracies: readonly number[];
  /** Scores of random_i-vs-random_{i+1} CAVs: the null distribution. */
  readonly randomScores: readonly number[];
  readonly mean: number;
  readonly std: number;
  readonly randomMean: number;
  readonly randomStd: number;
  readonly magnitude: number;
  readonly t: number;
  readonly df: number;
  /** Two-sided p-value of the t-test of concept scores vs random scores. */
  readonly p: number;
  readonly pCorrected: number;
  readonly significant: boolean;
  readonly checks: readonly Check[];
  readonly ms: number;
}

const mean = (xs: readonly number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;

/** TCAV from activations already captured (shared by `tcav`, `conceptAttribution` and `ace`). */
export function tcavFromActivations(
  concept: Activations,
  randoms: readonly Activations[],
  grads: Activations,
  o: { site: string; target: number; seed?: number; l2?: number; holdout?: number; iterations?: number; tests?: number; alpha?: number },
): Omit<TcavResult, 'ms'> {
  if (randoms.length < 2) throw new Error(`tcav: need at least 2 random counter-sets for the significance test, got ${randoms.length} (the paper uses ≥ 10)`);
  for (const [k, r] of randoms.entries()) if (r.d !== concept.d) throw new Error(`tcav: random set ${k} has ${r.d} activation values per example, the concept ${concept.d}`);
  if (grads.d !== concept.d) throw new Error(`tcav: gradients have ${grads.d} values per example, activations ${concept.d}`);
  if (grads.n < 1) throw new Error('tcav: no target-class inputs');
  const alpha = o.alpha ?? 0.05;
  if (!(alpha > 0 && alpha < 1)) throw new Error(`tcav: alpha must be in (0, 1), got ${alpha}`);
  const d = concept.d;
  const seed = o.seed ?? 0;
  const score = (v: Float64Array) => {
    let pos = 0;
    let sum = 0;
    for (let i = 0; i < grads.n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += grads.data[i * d + j] * v[j];
      if (s > 0) pos++;
      sum += s;
    }
    return { score: pos / grads.n, magnitude: sum / grads.n };
  };
  const fit = { l2: o.l2, holdout: o.holdout, iterations: o.iterations };
  const cavs = randoms.map((r, i) => fitCav(concept, r, { ...fit, seed: mixSeed(seed, i) }));
  const nulls = randoms.map((r, i) => fitCav(r, randoms[(i + 1) % randoms.length], { ...fit, seed: mixSeed(seed, 1000 + i) }));
  const s = cavs.map((c) => score(c.vector));
  const scores = s.map((x) => x.score);
  const randomScores = nulls.map((c) => score(c.vector).score);
  const test = tTest(scores, randomScores);
  const pCorrected = bonferroni(test.p, o.tests ?? 1);
  const accs = cavs.map((c) => c.accuracy);
  const meanAcc = mean(accs);
  const significant = pCorrected < alpha;
  return {
    method: 'tcav',
    site: o.site,
    target: o.target,
    scores,
    magnitudes: s.map((x) => x.magnitude),
    cavAccuracies: accs,
    randomScores,
    mean: mean(scores),
    std: sampleStd(scores),
    randomMean: mean(randomScores),
    randomStd: sampleStd(randomScores),
    magnitude: mean(s.map((x) => x.magnitude)),
    t: test.t,
    df: test.df,
    p: test.p,
    pCorrected,
    significant,
    checks: [
      { name: 'cav held-out accuracy', value: accs, passed: meanAcc >= 0.7, detail: `mean ${meanAcc.toFixed(3)} over ${accs.length} concept CAVs; below 0.7 the CAVs do not capture the concept and the scores mean little` },
      { name: 'significance', value: pCorrected, passed: significant, detail: `two-sided t-test of ${scores.length} concept scores (mean ${mean(scores).toFixed(3)}) vs ${randomScores.length} random-vs-random scores (mean ${mean(randomScores).toFixed(3)}): t = ${test.t.toFixed(3)}, df ${test.df}, p = ${test.p.toPrecision(3)}, Bonferroni over ${o.tests ?? 1} concept(s) → ${pCorrected.toPrecision(3)} ${significant ? '<' : '≥'} ${alpha}` },
      { name: 'random counter-sets', value: randoms.length, passed: randoms.length >= 10, detail: 'Kim et al. repeat against at least 10 random counter-sets' },
    ],
  };
}

/** TCAV of one concept for one class with its significance test (Kim et al. 2018, §3.2–3.3). */
export async function tcav(model: Model, options: TcavOptions): Promise<TcavResult> {
  const start = performance.now();
  const { site } = options;
  model.site(site);
  if (options.randoms.length < 2) throw new Error(`tcav: need at least 2 random counter-sets for the significance test, got ${options.randoms.length} (the paper uses ≥ 10)`);
  checkExamples(model, options.concept, 'tcav: concept examples');
  options.randoms.forEach((r, k) => checkExamples(model, r, `tcav: random set ${k}`));
  checkExamples(model, options.inputs, 'tcav: inputs', 1);
  const concept = await siteActivations(model, site, options.concept);
  const randoms: Activations[] = [];
  for (const r of options.randoms) randoms.push(await siteActivations(model, site, r));
  const grads = await targetGradients(model, site, options.inputs, options.target, options.score);
  return { ...tcavFromActivations(concept, randoms, grads, options), ms: performance.now() - start };
}

export interface ConceptAttribution {
  readonly site: string;
  readonly target: number;
  /** One row per concept: its TCAV score, magnitude and test, Bonferroni over all the concepts. */
  readonly rows: readonly (TcavResult & { readonly concept: string })[];
  readonly checks: readonly Check[];
  readonly ms: number;
}

/** TCAV scores (and magnitudes) of several concepts for one class, as a table; random sets are captured once. */
export async function conceptAttribution(
  model: Model,
  options: Omit<TcavOptions, 'concept' | 'tests'> & { readonly concepts: Readonly<Record<string, Examples>> },
): Promise<ConceptAttribution> {
  const start = performance.now();
  const { site } = options;
  model.site(site);
  const names = Object.keys(options.concepts);
  if (names.length === 0) throw new Error('conceptAttribution: no concepts given');
  if (options.randoms.length < 2) throw new Error(`tcav: need at least 2 random counter-sets for the significance test, got ${options.randoms.length} (the paper uses ≥ 10)`);
  for (const name of names) checkExamples(model, options.concepts[name], `conceptAttribution: concept '${name}'`);
  options.randoms.forEach((r, k) => checkExamples(model, r, `conceptAttribution: random set ${k}`));
  checkExamples(model, options.inputs, 'conceptAttribution: inputs', 1);
  const randoms: Activations[] = [];
  for (const r of options.randoms) randoms.push(await siteActivations(model, site, r));
  const grads = await targetGradients(model, site, options.inputs, options.target, options.score);
  const rows: (TcavResult & { concept: string })[] = [];
  for (const name of names) {
    const t0 = performance.now();
    const acts = await siteActivations(model, site, options.concepts[name]);
    rows.push({ concept: name, ...tcavFromActivations(acts, randoms, grads, { ...options, tests: names.length }), ms: performance.now() - t0 });
  }
  const weak = rows.filter((r) => mean(r.cavAccuracies) < 0.7).map((r) => r.concept);
  return {
    site,
    target: options.target,
    rows,
    checks: [
      { name: 'cav held-out accuracy', value: rows.map((r) => mean(r.cavAccuracies)), passed: weak.length === 0, detail: weak.length ? `weak CAVs (mean accuracy < 0.7): ${weak.join(', ')}` : 'every concept\'s CAVs reach 0.7 held-out accuracy' },
      { name: 'significant concepts', value: rows.filter((r) => r.significant).length, detail: `after Bonferroni over ${names.length} concepts: ${rows.filter((r) => r.significant).map((r) => r.concept).join(', ') || 'none'}` },
    ],
    ms: performance.now() - start,
  };
}

const info = (title: string, reference: string): MethodInfo => ({
  title,
  reference,
  taxonomy: passive('hidden semantics', 'global', RAUKER_V.conceptVectors),
  stochastic: true,
});

/** The concept-vector methods, by name. */
export const CONCEPT_METHODS = {
  cav: { info: info('Concept activation vector', 'Kim et al. 2018, Interpretability Beyond Feature Attribution (TCAV)'), run: cav },
  tcav: { info: info('Testing with concept activation vectors', 'Kim et al. 2018, Interpretability Beyond Feature Attribution (TCAV)'), run: tcav },
  ace: { info: info('Automatic concept-based explanations', 'Ghorbani et al. 2019, Towards Automatic Concept-based Explanations (ACE)'), run: ace },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
