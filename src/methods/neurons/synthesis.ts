/**
 * Feature synthesis by activation maximisation: gradient ascent on a model's input for a unit, channel, direction
 * or class logit (Erhan et al. 2009 "Visualizing Higher-Layer Features of a Deep Network"; Simonyan et al. 2014
 * "Deep Inside Convolutional Networks"), regularised by L1/L2 decay, total variation and blur (Mahendran & Vedaldi
 * 2015), random jitter/scale/rotation, a decorrelated Fourier parametrisation and a batch diversity term (Olah et al.
 * 2017 "Feature Visualization"; Mordvintsev et al. 2018 "Differentiable Image Parameterizations").
 *
 * One step: params → image (parametrisation, colour, squash to range) → random transform → `model.grad` of the
 * objective's seed at its site → adjoints back to the params → Adam (or plain) ascent. Host-side pieces
 * (transforms, DFT, diversity gradient) are exact linear adjoints or closed forms.
 *
 * @example
 * const s = await synthesize(model, { kind: 'class', index: 3 }, { steps: 128, reference: mnistTest.slice(0, 300) });
 * s.images; // Tensor [1, 1, 28, 28]; s.checks: beats-dataset, converged
 */
import { mulberry32 } from '../../data/datasets/random.js';
import type { Dataset } from '../../data/datasets/dataset.js';
import type { Model } from '../../model/model.js';
import { sliceRows, Tensor } from '../../runtime/tensor.js';
import { unknownNameError } from '../../util/nearest.js';
import type { Check } from '../attribution/explanation.js';
import { passiveHidden, RAUKER, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { COLOR_CHOLESKY, COLOR_SVD_SQRT, fourierParam, invert3, mixColors, normalizedColor, pixelParam, type ImageShape } from './parametrization.js';
import { drawTransform, totalVariation, validateTransforms, type ImageTransform, type TransformOptions } from './transforms.js';

/** What is maximised; spatial sites are averaged over positions unless a unit asks for the centre one. */
export type Objective =
  /** One unit along the unit axis (1 for [N, U] and [N, C, H, W], last for [N, T, U]); at the centre position by default. */
  | { readonly kind: 'unit'; readonly site: string; readonly unit: number; readonly position?: 'centre' | 'mean' }
  /** A whole channel: the mean of unit `channel` over all positions. */
  | { readonly kind: 'channel'; readonly site: string; readonly channel: number }
  /** The dot product of the unit vector with `vector`, averaged over positions. */
  | { readonly kind: 'direction'; readonly site: string; readonly vector: ArrayLike<number> }
  /** A class logit: column `index` of an output [N, K] (default the first output). */
  | { readonly kind: 'class'; readonly index: number; readonly output?: string };

/** The objective as a seed at a site: objective(row) = Σ row ⊙ seed. */
interface SiteSeed {
  readonly site: string;
  readonly seed: Float32Array;
  readonly rowShape: readonly number[];
}

export interface SynthesisOptions extends TransformOptions {
  /** Ascent steps (default 256). */
  readonly steps?: number;
  /** Step size (default 0.05). */
  readonly lr?: number;
  /** 'adam' (default) or 'ascent' (plain gradient ascent). */
  readonly optimizer?: 'adam' | 'ascent';
  /** Seed of the initial parameters and of every random transform: the same seed gives bit-identical images. */
  readonly seed?: number;
  /** Images optimised together (default 1). */
  readonly batch?: number;
  /** The image input (default the model's first input). */
  readonly input?: string;
  /** [C, H, W] when the model's declared input shape has symbolic dims beyond the batch. */
  readonly shape?: readonly [number, number, number];
  /** 'fourier' (default) or 'pixel'. */
  readonly parametrization?: 'pixel' | 'fourier';
  /** Colour decorrelation of 3-channel images (default 'svd'); ignored for other channel counts. */
  readonly decorrelate?: 'svd' | 'cholesky' | false;
  /** Valid input range (default [0, 1]); null: unconstrained. */
  readonly range?: readonly [number, number] | null;
  /** How images are kept in range: 'sigmoid' (default) or 'clamp' (straight-through gradient; pixels projected). */
  readonly squash?: 'sigmoid' | 'clamp';
  /** Penalties subtracted from the objective: l2·‖x‖², l1·‖x‖₁, tv·TV(x). */
  readonly l2?: number;
  readonly l1?: number;
  readonly tv?: number;
  /** Gaussian blur of σ pixels every `every` steps. */
  readonly blur?: { readonly sigma: number; readonly every: number };
  /** Batch diversity: weight · mean pairwise cosine similarity of Gram matrices (or activations) at `site`. */
  readonly diversity?: { readonly weight: number; readonly site?: string; readonly measure?: 'gram' | 'activation' };
  /** Initial images [1 or batch, C, H, W] (default: small random parameters). */
  readonly start?: Tensor;
  /** Standard deviation of the random initial parameters (default 0.01). */
  readonly initScale?: number;
  /** Natural examples for the beats-dataset check (streamed in batches of 128). */
  readonly reference?: Dataset<'float32'> | Tensor;
  /** Largest relative change of the objective over the last 10% of steps that counts as converged (default 0.01). */
  readonly tolerance?: number;
}

export interface Synthesis {
  readonly method: 'activation-maximization';
  readonly taxonomy: Taxonomy;
  readonly objective: Objective;
  /** The synthesised inputs, float32 [B, C, H, W]. */
  readonly images: Tensor<'float32'>;
  /** Mean objective over the batch at every step (on that step's transformed images). */
  readonly curve: Float64Array;
  /** The objective of each final image, untransformed. */
  readonly activation: readonly number[];
  /** The best natural example's objective and position, when a reference was given. */
  readonly reference?: { readonly best: number; readonly index: number };
  readonly checks: Check[];
}

const INFO = {
  title: 'Activation maximisation (feature synthesis)',
  reference: 'Olah et al. 2017, Feature Visualization (Erhan et al. 2009; Mordvintsev et al. 2018)',
  taxonomy: passiveHidden('global', RAUKER.featureSynthesis),
  stochastic: true,
} as const satisfies MethodInfo;

/** Synthesises inputs that maximise `objective` under the given regularisers; see the module doc. */
export async function synthesize(model: Model, objective: Objective, options: SynthesisOptions = {}): Promise<Synthesis> {
  const problem = await ascentProblem(model, objective, options);
  const { o, shape, input, obj, divSite, pipe } = problem;
  const [B, C, H, W] = shape;
  const rand = mulberry32(o.seed);
  let p = o.start ? pipe.fromImage(startImages(o.start, shape, o)) : gaussian(rand, pipe.param.size, o.initScale);
  const adam = { m: new Float64Array(p.length), v: new Float64Array(p.length) };
  const curve = new Float64Array(o.steps);
  for (let step = 0; step < o.steps; step++) {
    if (o.blur && step > 0 && step % o.blur.every === 0) p = pipe.param.blur(p, o.blur.sigma);
    const g = await problem.evaluate(p, drawTransform(rand, shape, o));
    curve[step] = mean(g.values);
    if (o.optimizer === 'ascent') for (let i = 0; i < p.length; i++) p[i] += o.lr * g.grad[i];
    else adamStep(p, g.grad, adam, step + 1, o.lr);
    if (pipe.param.kind === 'pixel' && o.squash === 'clamp' && o.range && !pipe.decorrelated) for (let i = 0; i < p.length; i++) p[i] = Math.min(o.range[1], Math.max(o.range[0], p[i]));
  }
  const images = toTensor(pipe.forward(p).x, shape);
  const finalRun = await model.run({ [input]: images }, { capture: [obj.site, ...(divSite ? [divSite] : [])] });
  const activation = rowValues(finalRun.captures[obj.site], obj.seed);
  const checks: Check[] = [];
  let reference: Synthesis['reference'];
  if (o.reference) {
    reference = await bestNatural(model, input, obj, o.reference, [C, H, W]);
    const worst = Math.min(...activation);
    checks.push({
      name: 'beats-dataset',
      value: worst / reference.best,
      passed: worst >= reference.best,
      detail: `weakest synthesised objective ${worst.toPrecision(5)} vs best natural example ${reference.best.toPrecision(5)} (#${reference.index}); value = ratio${reference.best <= 0 ? ' (best ≤ 0: read the sign with care)' : ''}`,
    });
  }
  const k = Math.max(1, Math.ceil(0.1 * o.steps));
  const last = curve[o.steps - 1];
  const change = o.steps > 1 ? Math.abs(last - curve[Math.max(0, o.steps - 1 - k)]) / Math.max(Math.abs(last), 1e-12) : Infinity;
  checks.push({ name: 'converged', value: change, passed: change <= o.tolerance, detail: `relative change of the objective over the last ${k} of ${o.steps} steps (tolerance ${o.tolerance})` });
  if (B > 1) {
    const site = divSite ?? obj.site;
    const acts = divSite ? finalRun.captures[divSite] : finalRun.captures[obj.site];
    const sim = diversityTerm(acts, 'activation').value;
    checks.push({ name: 'diversity', value: sim, detail: `mean pairwise cosine similarity of the ${B} images' activations at '${site}' (lower: more diverse)` });
  }
  return { method: 'activation-maximization', taxonomy: INFO.taxonomy, objective, images, curve, activation, ...(reference ? { reference } : {}), checks };
}

/**
 * The ascent problem of one synthesis, checked: `evaluate(p, t)` gives the objective of each image of params p under
 * transform t, the penalised total J = Σ objective − diversity − l2‖x‖² − l1‖x‖₁ − tv·TV(x), and dJ/dp.
 */
export async function ascentProblem(model: Model, objective: Objective, options: SynthesisOptions = {}) {
  const o = validate(options);
  const { shape, input } = imageInput(model, o);
  const obj = await objectiveSeed(model, objective, input, shape);
  const divSite = o.diversity && shape[0] > 1 && o.diversity.weight > 0 ? await siteSeedless(model, o.diversity.site ?? obj.site, input, shape) : undefined;
  const div = divSite && o.diversity ? { site: divSite, weight: o.diversity.weight, measure: o.diversity.measure ?? 'gram' } : undefined;
  const pipe = pipeline(shape, o);
  const evaluate = async (p: Float64Array, t: ImageTransform): Promise<{ values: number[]; total: number; grad: Float64Array }> => {
    const { x, back } = pipe.forward(p);
    const g = await ascentGradient(model, input, obj, { [input]: toTensor(t.apply(x), shape) }, div);
    const gx = t.adjoint(g.grad);
    const penalty = penalize(gx, x, shape, o);
    return { values: g.values, total: g.values.reduce((a, b) => a + b, 0) - (div ? div.weight * g.diversity : 0) - penalty, grad: back(gx) };
  };
  return { o, shape, input, obj, divSite, pipe, evaluate };
}

type Resolved = Required<Omit<SynthesisOptions, 'shape' | 'start' | 'reference' | 'blur' | 'diversity' | 'input' | 'scale' | 'rotate' | 'jitter'>> & SynthesisOptions;

function validate(options: SynthesisOptions): Resolved {
  const o = {
    steps: 256, lr: 0.05, optimizer: 'adam', seed: 0, batch: 1, parametrization: 'fourier', decorrelate: 'svd', range: [0, 1], squash: 'sigmoid',
    l2: 0, l1: 0, tv: 0, initScale: 0.01, tolerance: 0.01, ...options,
  } as Resolved;
  const bad = (what: string, v: unknown) => new Error(`synthesize: ${what}, got ${String(v)}`);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw bad('steps must be a positive integer', o.steps);
  if (!Number.isInteger(o.batch) || o.batch < 1) throw bad('batch must be a positive integer', o.batch);
  if (!(o.lr > 0) || !Number.isFinite(o.lr)) throw bad('lr must be a positive number', o.lr);
  if (!Number.isSafeInteger(o.seed)) throw bad('seed must be an integer', o.seed);
  for (const k of ['l2', 'l1', 'tv', 'initScale', 'tolerance'] as const) if (!(o[k] >= 0) || !Number.isFinite(o[k])) throw bad(`${k} must be a non-negative number`, o[k]);
  if (!['adam', 'ascent'].includes(o.optimizer)) throw bad("optimizer must be 'adam' or 'ascent'", o.optimizer);
  if (!['pixel', 'fourier'].includes(o.parametrization)) throw bad("parametrization must be 'pixel' or 'fourier'", o.parametrization);
  if (o.range && !(o.range[0] < o.range[1])) throw bad('range must be [lo, hi] with lo < hi', `[${o.range.join(', ')}]`);
  if (o.blur && !(o.blur.sigma > 0 && Number.isInteger(o.blur.every) && o.blur.every > 0)) throw bad('blur needs sigma > 0 and a positive integer every', JSON.stringify(o.blur));
  if (o.diversity && !(o.diversity.weight >= 0)) throw bad('diversity.weight must be non-negative', o.diversity.weight);
  validateTransforms(o);
  return o;
}

/** The image input's name and the [B, C, H, W] synthesised. */
function imageInput(model: Model, o: Resolved): { input: string; shape: ImageShape } {
  const names = model.inputs.map((i) => i.name);
  const input = o.input ?? names[0];
  const info = model.inputs.find((i) => i.name === input);
  if (!info) throw unknownNameError('input', input, names);
  const dims = info.shape ?? [];
  if (dims.length !== 4) throw new Error(`synthesize: input '${input}' has shape [${dims.join(', ')}]; feature synthesis needs an image input [N, C, H, W]`);
  if (info.dtype !== 'float32') throw new Error(`synthesize: input '${input}' is ${info.dtype}; feature synthesis needs float32 pixels`);
  const chw = o.shape ?? dims.slice(1).map((d) => {
    if (typeof d !== 'number') throw new Error(`synthesize: input '${input}' has symbolic dim '${d}'; pass options.shape [C, H, W]`);
    return d;
  });
  if (chw.length !== 3 || !chw.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`synthesize: shape must be [C, H, W] of positive integers, got [${chw.join(', ')}]`);
  return { input, shape: [o.batch, chw[0], chw[1], chw[2]] };
}

/** A site checked to exist and resolve (the diversity site needs no seed, only its name). */
async function siteSeedless(model: Model, name: string, input: string, shape: ImageShape): Promise<string> {
  const v = model.site(name).value;
  const s = (await model.resolveSites({ [input]: [1, ...shape.slice(1)] })).find((x) => x.value === v);
  if (!s?.shape || s.shape.length < 2) throw new Error(`synthesize: diversity site '${name}' needs a batch axis and units`);
  return name;
}

/** params → image, and the pull-back of image gradients to params (parametrisation, colour mixing, squash). */
export function pipeline(shape: ImageShape, o: Pick<Resolved, 'parametrization' | 'decorrelate' | 'range' | 'squash'>) {
  const param = o.parametrization === 'pixel' ? pixelParam(shape) : fourierParam(shape);
  const color = shape[1] === 3 && o.decorrelate ? normalizedColor(o.decorrelate === 'cholesky' ? COLOR_CHOLESKY : COLOR_SVD_SQRT) : undefined;
  const [lo, hi] = o.range ?? [0, 1];
  const sigmoid = o.range && o.squash === 'sigmoid';
  const forward = (p: Float64Array) => {
    const u = param.toImage(p);
    const v = color ? mixColors(u, shape, color) : u;
    const x = new Float64Array(v.length);
    const dx = new Float64Array(v.length).fill(1);
    for (let i = 0; i < v.length; i++) {
      if (sigmoid) {
        const s = 1 / (1 + Math.exp(-v[i]));
        x[i] = lo + (hi - lo) * s;
        dx[i] = (hi - lo) * s * (1 - s);
      } else x[i] = o.range ? Math.min(hi, Math.max(lo, v[i])) : v[i];
    }
    const back = (gx: Float64Array) => {
      const gv = gx.map((g, i) => g * dx[i]);
      return param.adjoint(color ? mixColors(gv, shape, color, true) : gv);
    };
    return { x, back };
  };
  const fromImage = (x: Float64Array) => {
    const v = sigmoid ? x.map((xi) => { const s = Math.min(1 - 1e-4, Math.max(1e-4, (xi - lo) / (hi - lo))); return Math.log(s / (1 - s)); }) : x;
    return param.fromImage(color ? mixColors(v, shape, invert3(color)) : v);
  };
  return { param, forward, fromImage, decorrelated: color !== undefined };
}

/** The objective per image and d(objective − diversity)/d(input) for one batch of transformed images. */
async function ascentGradient(
  model: Model, input: string, obj: SiteSeed, feeds: Record<string, Tensor>,
  div?: { site: string; weight: number; measure: 'gram' | 'activation' },
): Promise<{ values: number[]; grad: Float64Array; diversity: number }> {
  const rows = feeds[input].shape[0];
  const seed = tile(obj.seed, obj.rowShape, rows);
  if (!div) {
    const r = await model.grad(feeds, { of: obj.site, wrt: [input], seed, capture: [obj.site] });
    return { values: rowValues(r.captures[obj.site], obj.seed), grad: Float64Array.from(r.grads[input].data as Float32Array), diversity: 0 };
  }
  const run = await model.run(feeds, { capture: [obj.site, div.site] });
  const d = diversityTerm(run.captures[div.site], div.measure);
  const divSeed = Tensor.float32(d.grad.map((v) => -div.weight * v), run.captures[div.site].shape);
  const same = model.site(div.site).value === model.site(obj.site).value;
  const a = await model.grad(feeds, { of: obj.site, wrt: [input], seed: same ? add(seed, divSeed) : seed });
  const grad = Float64Array.from(a.grads[input].data as Float32Array);
  if (!same) {
    const b = await model.grad(feeds, { of: div.site, wrt: [input], seed: divSeed });
    b.grads[input].data.forEach((v, i) => (grad[i] += v as number));
  }
  return { values: rowValues(run.captures[obj.site], obj.seed), grad, diversity: d.value };
}

/** Subtracts the gradients of the penalties l2‖x‖² + l1‖x‖₁ + tv·TV(x) from gx in place; returns their value. */
function penalize(gx: Float64Array, x: Float64Array, shape: ImageShape, o: Resolved): number {
  const tv = o.tv > 0 ? totalVariation(x, shape) : undefined;
  let value = tv ? o.tv * tv.value : 0;
  for (let i = 0; i < gx.length; i++) {
    gx[i] -= 2 * o.l2 * x[i] + o.l1 * Math.sign(x[i]) + (tv ? o.tv * tv.grad[i] : 0);
    value += o.l2 * x[i] * x[i] + o.l1 * Math.abs(x[i]);
  }
  return value;
}

/** The best objective over natural examples, streamed in batches. */
async function bestNatural(model: Model, input: string, obj: SiteSeed, ref: Dataset<'float32'> | Tensor, chw: readonly number[]): Promise<{ best: number; index: number }> {
  const batches: Iterable<{ x: Tensor; offset: number }> = ref instanceof Tensor ? tensorBatches(ref, 128) : datasetBatches(ref, 128);
  let best = -Infinity;
  let index = -1;
  for (const { x, offset } of batches) {
    if (x.shape.slice(1).join() !== chw.join()) throw new Error(`synthesize: reference examples are [${x.shape.slice(1).join(', ')}], the synthesised images [${chw.join(', ')}]`);
    const r = await model.run({ [input]: x }, { capture: [obj.site] });
    rowValues(r.captures[obj.site], obj.seed).forEach((v, i) => {
      if (v > best) [best, index] = [v, offset + i];
    });
  }
  if (index < 0) throw new Error('synthesize: the reference set is empty');
  return { best, index };
}

function* tensorBatches(t: Tensor, n: number): Iterable<{ x: Tensor; offset: number }> {
  if (t.rank !== 4) throw new Error(`synthesize: a reference tensor must be [N, C, H, W], got [${t.shape.join(', ')}]`);
  for (let s = 0; s < t.shape[0]; s += n) yield { x: sliceRows(t, s, Math.min(t.shape[0], s + n)), offset: s };
}

function* datasetBatches(ds: Dataset<'float32'>, n: number): Iterable<{ x: Tensor; offset: number }> {
  let offset = 0;
  for (const b of ds.batches(n)) {
    yield { x: b.x, offset };
    offset += b.x.shape[0];
  }
}

/** Start images as [B, C, H, W] float64 (one image repeated over the batch), checked finite. */
function startImages(t: Tensor, shape: ImageShape, o: Resolved): Float64Array {
  const [B, C, H, W] = shape;
  const ok = t.rank === 4 && (t.shape[0] === 1 || t.shape[0] === B) && t.shape[1] === C && t.shape[2] === H && t.shape[3] === W;
  if (!ok) throw new Error(`synthesize: start must be [1 or ${B}, ${C}, ${H}, ${W}], got [${t.shape.join(', ')}]`);
  const row = C * H * W;
  const out = new Float64Array(B * row);
  for (let i = 0; i < out.length; i++) {
    const v = Number(t.data[t.shape[0] === 1 ? i % row : i]);
    if (!Number.isFinite(v)) throw new Error(`synthesize: start image has a non-finite value (${v}) at flat index ${i}`);
    out[i] = v;
  }
  if (o.range && o.squash === 'clamp') for (let i = 0; i < out.length; i++) out[i] = Math.min(o.range[1], Math.max(o.range[0], out[i]));
  return out;
}

function adamStep(p: Float64Array, g: Float64Array, s: { m: Float64Array; v: Float64Array }, t: number, lr: number): void {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const [c1, c2] = [1 - b1 ** t, 1 - b2 ** t];
  for (let i = 0; i < p.length; i++) {
    s.m[i] = b1 * s.m[i] + (1 - b1) * g[i];
    s.v[i] = b2 * s.v[i] + (1 - b2) * g[i] * g[i];
    p[i] += (lr * (s.m[i] / c1)) / (Math.sqrt(s.v[i] / c2) + eps); // ascent
  }
}

/** Normal samples (Box–Muller) from the seeded stream. */
function gaussian(rand: () => number, n: number, sd: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = sd * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return out;
}

/** Σ over each row of a ⊙ seedRow: the objective of every example. */
export function rowValues(a: Tensor, seedRow: Float32Array): number[] {
  const rows = a.shape[0];
  const n = seedRow.length;
  return Array.from({ length: rows }, (_, r) => {
    let s = 0;
    for (let i = 0; i < n; i++) if (seedRow[i] !== 0) s += seedRow[i] * Number(a.data[r * n + i]);
    return s;
  });
}

function tile(row: Float32Array, rowShape: readonly number[], rows: number): Tensor<'float32'> {
  const out = new Float32Array(rows * row.length);
  for (let r = 0; r < rows; r++) out.set(row, r * row.length);
  return Tensor.float32(out, [rows, ...rowShape]);
}

const toTensor = (x: Float64Array, shape: ImageShape) => Tensor.float32(Float32Array.from(x), shape);
const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const add = (a: Tensor<'float32'>, b: Tensor<'float32'>) => Tensor.float32(a.data.map((v, i) => v + b.data[i]), a.shape);

/** Resolves the objective's site (its concrete shape at one image) and builds its seed row, checking units. */
async function objectiveSeed(model: Model, objective: Objective, input: string, shape: ImageShape): Promise<SiteSeed> {
  const site = objective.kind === 'class' ? objective.output ?? model.outputs[0].name : objective.site;
  const value = model.site(site).value;
  const resolved = (await model.resolveSites({ [input]: [1, ...shape.slice(1)] })).find((s) => s.value === value);
  const dims = resolved?.shape;
  if (!dims || !dims.every((d): d is number => typeof d === 'number')) throw new Error(`synthesize: the shape of '${site}' could not be resolved`);
  if (dims.length < 2 || dims[0] !== 1) throw new Error(`synthesize: '${site}' has shape [${dims.join(', ')}]; an objective needs a batch axis and a unit axis`);
  if (objective.kind === 'class' && dims.length !== 2) throw new Error(`synthesize: class objectives need an output [N, K]; '${site}' is [${dims.join(', ')}]`);
  const rowShape = dims.slice(1);
  const axis = dims.length === 3 ? 1 : 0; // unit axis within a row
  const units = rowShape[axis];
  const stride = rowShape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const size = rowShape.reduce((a, b) => a * b, 1);
  const positions = size / units;
  const unitOf = (i: number) => Math.floor(i / stride) % units;
  const checkUnit = (u: number, what: string) => {
    if (!Number.isInteger(u) || u < 0 || u >= units) throw new Error(`synthesize: ${what} ${u} is out of range for '${site}' with ${units} units [${dims.join(', ')}]`);
  };
  const seed = new Float32Array(size);
  if (objective.kind === 'direction') {
    if (objective.vector.length !== units) throw new Error(`synthesize: direction has ${objective.vector.length} values; '${site}' has ${units} units`);
    for (let i = 0; i < size; i++) seed[i] = objective.vector[unitOf(i)] / positions;
    if (!seed.every(Number.isFinite)) throw new Error('synthesize: direction has non-finite values');
  } else {
    const u = objective.kind === 'unit' ? objective.unit : objective.kind === 'channel' ? objective.channel : objective.index;
    checkUnit(u, objective.kind === 'class' ? 'class index' : objective.kind);
    const centre = objective.kind === 'unit' && objective.position !== 'mean';
    // Offset of the centre position within a row, the unit axis left out.
    const c = rowShape.reduce((acc, d, a) => (a === axis ? acc : acc * d + Math.floor(d / 2)), 0);
    let k = 0;
    for (let i = 0; i < size; i++) {
      if (unitOf(i) !== u) continue;
      if (!centre) seed[i] = 1 / positions;
      else if (k++ === c) seed[i] = 1;
    }
  }
  return { site, seed, rowShape };
}

/**
 * Mean pairwise cosine similarity D over a batch of activations [B, ...] — of their Gram matrices (Olah et al. 2017:
 * features F [C, P], G = F Fᵀ) or of the flattened activations — and dD/d(activations).
 */
export function diversityTerm(a: Tensor, measure: 'gram' | 'activation'): { value: number; grad: Float64Array } {
  const B = a.shape[0];
  const row = a.size / B;
  const grad = new Float64Array(a.size);
  if (B < 2) return { value: 0, grad };
  // Features per row as [C, P]: unit axis 1 of [N, C, …] (last of [N, T, U]).
  const [C, P, cStride, pStride] = a.rank === 3 ? [a.shape[2], a.shape[1], 1, a.shape[2]] : [a.shape[1], row / a.shape[1], row / a.shape[1], 1];
  const F = (b: number, c: number, p: number) => Number(a.data[b * row + c * cStride + p * pStride]);
  const z = Array.from({ length: B }, (_, b) => {
    if (measure === 'activation') return Float64Array.from({ length: row }, (_, i) => Number(a.data[b * row + i]));
    const g = new Float64Array(C * C);
    for (let i = 0; i < C; i++) for (let j = i; j < C; j++) {
      let s = 0;
      for (let p = 0; p < P; p++) s += F(b, i, p) * F(b, j, p);
      g[i * C + j] = g[j * C + i] = s;
    }
    return g;
  });
  const norms = z.map((v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0)) + 1e-12);
  const unit = z.map((v, b) => v.map((x) => x / norms[b]));
  const pairs = B * (B - 1);
  let value = 0;
  for (let i = 0; i < B; i++) {
    // dD/dz_i = (2 / pairs) Σ_{j≠i} (ẑ_j − cos_ij ẑ_i) / ‖z_i‖
    const dz = new Float64Array(z[i].length);
    for (let j = 0; j < B; j++) {
      if (j === i) continue;
      const cos = unit[i].reduce((s, x, k) => s + x * unit[j][k], 0);
      value += cos / pairs;
      for (let k = 0; k < dz.length; k++) dz[k] += ((2 / pairs) * (unit[j][k] - cos * unit[i][k])) / norms[i];
    }
    if (measure === 'activation') grad.set(dz, i * row);
    // Through G = F Fᵀ (dz symmetric): dD/dF = 2 dz F.
    else for (let c = 0; c < C; c++) for (let p = 0; p < P; p++) {
      let s = 0;
      for (let k = 0; k < C; k++) s += dz[c * C + k] * F(i, k, p);
      grad[i * row + c * cStride + p * pStride] = 2 * s;
    }
  }
  return { value, grad };
}

export const SYNTHESIS_METHODS = {
  'activation-maximization': { info: INFO, run: synthesize },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
