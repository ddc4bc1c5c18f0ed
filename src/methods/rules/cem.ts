/**
 * Contrastive explanations (Dhurandhar et al. 2018, "Explanations based on the Missing: Towards Contrastive
 * Explanations with Pertinent Negatives", NeurIPS): for an input x₀ of class t₀,
 *
 * - a pertinent negative (PN) is a minimal, sparse addition δ ≥ 0 on the features absent from x₀ that changes the
 *   class: min c·max(f_t₀(x₀+δ) − max_{j≠t₀} f_j(x₀+δ), −κ) + β‖δ‖₁ + ‖δ‖₂² + γ‖x₀+δ − AE(x₀+δ)‖₂²;
 * - a pertinent positive (PP) is a minimal, sparse part δ of x₀ (between the absent value and x₀, feature by feature)
 *   that alone keeps the class: min c·max(max_{j≠t₀} f_j(δ) − f_t₀(δ), −κ) + β‖δ‖₁ + ‖δ‖₂² + γ‖δ − AE(δ)‖₂².
 *
 * Solved as the paper does: FISTA on the smooth part (the hinge, ‖δ‖₂² and the autoencoder term), whose proximal step
 * is the elastic-net shrinkage S_{αβ} followed by the projection onto the feasible box, with a polynomially decaying
 * step α_k = lr·(1 − k/K)^½ and a binary search on c per example (c falls when a solution was found, rises tenfold
 * until one is). The best solution is the successful iterate of least elastic-net cost β‖δ‖₁ + ‖δ‖₂². The shrinkage
 * threshold is α·β, the proximal operator of the objective above (the authors' code used β itself). f are the logits;
 * gradients come from model.grad w.r.t. the input, the autoencoder's from its own model.grad (any ONNX autoencoder).
 * "Absent" means equal to `absent` (default 0: background pixels, features off).
 *
 * @example
 * const pn = await pertinentNegative(model, x, { kappa: 0.1, beta: 0.1 });
 * pn.delta; pn.classes; pn.checks; // the pixels whose addition would make it another digit
 */
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import { argmaxRows } from '../../util/softmax.js';
import type { Check } from '../attribution/explanation.js';
import { attackSetup, type AttackSetup } from '../representations/adversarial.js';
import { passive, type Taxonomy } from '../taxonomy.js';

export type CemMode = 'pn' | 'pp';

export interface CemOptions {
  /** Confidence margin κ ≥ 0 the class change (PN) or the kept class (PP) must reach in logits (default 0). */
  readonly kappa?: number;
  /** Weight of ‖δ‖₁ (default 0.1). */
  readonly beta?: number;
  /** Weight of the autoencoder term (default 0; needs `autoencoder` when > 0). */
  readonly gamma?: number;
  /** An autoencoder whose input and output have the shape of x (any ONNX model with one float32 input). */
  readonly autoencoder?: Model;
  /** Initial c of the binary search (default 10) and its number of steps (default 9). */
  readonly c?: number;
  readonly searchSteps?: number;
  /** FISTA iterations per search step (default 200) and the initial step size (default 0.01). */
  readonly iterations?: number;
  readonly lr?: number;
  /** Valid input range (default [0, 1]); a PN stays inside it. */
  readonly range?: readonly [number, number];
  /** The value that means "absent" (default 0). */
  readonly absent?: number;
  /** The float input (default: the model's only float32 input) and the logits output (default: the first). */
  readonly input?: string;
  readonly output?: string;
}

export interface CemResult {
  readonly method: 'cem-pn' | 'cem-pp';
  readonly taxonomy: Taxonomy;
  readonly mode: CemMode;
  /** δ per example, the shape of x (zeros where none was found). */
  readonly delta: Tensor<'float32'>;
  /** What the model is shown: x₀ + δ (PN) or absent + δ (PP). */
  readonly explained: Tensor<'float32'>;
  /** Whether the search found a solution, per example. */
  readonly found: readonly boolean[];
  /** The class of x₀ (t₀) and of the explained input, per example. */
  readonly originalClasses: Int32Array;
  readonly classes: Int32Array;
  /** Non-zero entries of δ, the features δ may use (absent ones for a PN, x₀'s support for a PP), x₀'s support. */
  readonly nonzero: Int32Array;
  readonly feasible: Int32Array;
  readonly support: Int32Array;
  /** β‖δ‖₁ + ‖δ‖₂² per example, and the c that produced the best δ (NaN where none was found). */
  readonly cost: Float64Array;
  readonly constants: Float64Array;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

/** ‖z − AE(z)‖₂² per example and its gradient w.r.t. z: 2r − 2 J_AEᵀ r with r = z − AE(z). */
export async function autoencoderLoss(ae: Model, z: Tensor<'float32'>): Promise<{ loss: Float64Array; grad: Float32Array }> {
  const input = ae.inputs[0].name;
  const output = ae.outputs[0].name;
  const rec = (await ae.run({ [input]: z })).outputs[output];
  if (rec.size !== z.size) throw new Error(`cem: the autoencoder maps [${z.shape.join(', ')}] to [${rec.shape.join(', ')}]; it must keep the input's shape`);
  const n = z.shape[0];
  const row = z.size / n;
  const r = new Float32Array(z.size);
  const loss = new Float64Array(n);
  for (let i = 0; i < z.size; i++) {
    r[i] = z.data[i] - (rec.data as Float32Array)[i];
    loss[Math.floor(i / row)] += r[i] * r[i];
  }
  const seed = new Tensor('float32', Float32Array.from(r, (v) => -2 * v), rec.shape);
  const g = (await ae.grad({ [input]: z }, { of: output, wrt: [input], seed })).grads[input].data as Float32Array;
  const grad = new Float32Array(z.size);
  for (let i = 0; i < z.size; i++) grad[i] = 2 * r[i] + g[i];
  return { loss, grad };
}

interface Plan {
  readonly s: AttackSetup;
  readonly shape: readonly number[];
  readonly mode: CemMode;
  readonly base: Float32Array; // x₀ (PN) or the absent value (PP), per entry
  readonly lo: Float32Array; // the box δ lives in
  readonly hi: Float32Array;
  readonly kappa: number;
  readonly beta: number;
  readonly gamma: number;
  readonly ae?: Model;
  readonly t0: Int32Array;
  readonly classes: number;
}

function finiteAtLeast(name: string, v: number, min: number, strict: boolean): void {
  if (!Number.isFinite(v) || v < min || (strict && v === min)) throw new Error(`cem: ${name} must be a finite number ${strict ? '>' : '≥'} ${min}, got ${v}`);
}

/** The hinge's margin per example: f_t₀ − max_{j≠t₀} f_j (PN) or its negation (PP), and the runner-up class. */
function margins(p: Plan, logits: Float32Array): { margin: Float64Array; other: Int32Array } {
  const n = logits.length / p.classes;
  const margin = new Float64Array(n);
  const other = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const t = p.t0[i];
    let best = -1;
    for (let j = 0; j < p.classes; j++) if (j !== t && (best < 0 || logits[i * p.classes + j] > logits[i * p.classes + best])) best = j;
    other[i] = best;
    const d = logits[i * p.classes + t] - logits[i * p.classes + best];
    margin[i] = p.mode === 'pn' ? d : -d;
  }
  return { margin, other };
}

/** Gradient of the smooth part c·hinge + ‖δ‖₂² + γ·AE at the slack point y (z = base + y). */
async function smoothGrad(model: Model, p: Plan, y: Float32Array, z: Float32Array, logits: Float32Array, c: Float64Array): Promise<Float32Array> {
  const { margin, other } = margins(p, logits);
  const n = p.s.n;
  const seed = new Float32Array(n * p.classes);
  for (let i = 0; i < n; i++) {
    if (margin[i] <= -p.kappa) continue; // the hinge is flat there
    const sign = p.mode === 'pn' ? 1 : -1;
    seed[i * p.classes + p.t0[i]] = sign * c[i];
    seed[i * p.classes + other[i]] = -sign * c[i];
  }
  const zt = Tensor.float32(z, p.shape);
  const g = (await model.grad({ [p.s.input]: zt }, { of: p.s.output, wrt: [p.s.input], seed: Tensor.float32(seed, [n, p.classes]) })).grads[p.s.input].data as Float32Array;
  const out = new Float32Array(y.length);
  for (let j = 0; j < y.length; j++) out[j] = g[j] + 2 * y[j];
  if (p.gamma > 0 && p.ae) {
    const a = await autoencoderLoss(p.ae, zt);
    for (let j = 0; j < y.length; j++) out[j] += p.gamma * a.grad[j];
  }
  return out;
}

async function logitsOf(model: Model, p: Plan, z: Float32Array, rows: number): Promise<Float32Array> {
  const t = Tensor.float32(z, [rows, ...p.shape.slice(1)]);
  return (await model.run({ [p.s.input]: t })).outputs[p.s.output].data as Float32Array;
}

function enCost(beta: number, d: Float32Array): number {
  let l1 = 0;
  let l2 = 0;
  for (const v of d) {
    l1 += Math.abs(v);
    l2 += v * v;
  }
  return beta * l1 + l2;
}

async function search(model: Model, p: Plan, o: Required<Pick<CemOptions, 'c' | 'searchSteps' | 'iterations' | 'lr'>>) {
  const { n, row } = p.s;
  const size = n * row;
  const c = new Float64Array(n).fill(o.c);
  const lower = new Float64Array(n);
  const upper = new Float64Array(n).fill(1e10);
  const best = new Float32Array(size);
  const bestCost = new Float64Array(n).fill(Infinity);
  const bestC = new Float64Array(n).fill(NaN);
  const z = new Float32Array(2 * size);
  for (let step = 0; step < o.searchSteps; step++) {
    const delta = new Float32Array(size);
    const y = new Float32Array(size);
    const success = new Array<boolean>(n).fill(false);
    for (let k = 0; k < o.iterations; k++) {
      const alpha = o.lr * Math.sqrt(1 - k / o.iterations);
      // One forward run at [δ; y]: δ is scored, y is where the gradient is taken.
      for (let j = 0; j < size; j++) {
        z[j] = p.base[j] + delta[j];
        z[size + j] = p.base[j] + y[j];
      }
      const logits = await logitsOf(model, p, z, 2 * n);
      const { margin } = margins(p, logits.subarray(0, n * p.classes));
      const pred = argmaxRows(Tensor.float32(logits.subarray(0, n * p.classes), [n, p.classes]), p.classes);
      for (let i = 0; i < n; i++) {
        const ok = margin[i] <= -p.kappa && (p.mode === 'pn' ? pred[i] !== p.t0[i] : pred[i] === p.t0[i]);
        if (!ok) continue;
        success[i] = true;
        const d = delta.subarray(i * row, (i + 1) * row);
        const cost = enCost(p.beta, d);
        if (cost < bestCost[i]) {
          bestCost[i] = cost;
          bestC[i] = c[i];
          best.set(d, i * row);
        }
      }
      if (k === o.iterations - 1) break;
      const g = await smoothGrad(model, p, y, z.subarray(size), logits.subarray(n * p.classes), c);
      const t = alpha * p.beta;
      const momentum = k / (k + 3);
      for (let j = 0; j < size; j++) {
        const u = y[j] - alpha * g[j];
        const shrunk = u > t ? u - t : u < -t ? u + t : 0;
        const next = Math.min(p.hi[j], Math.max(p.lo[j], shrunk));
        y[j] = Math.min(p.hi[j], Math.max(p.lo[j], next + momentum * (next - delta[j])));
        delta[j] = next;
      }
    }
    for (let i = 0; i < n; i++) {
      if (success[i]) {
        upper[i] = Math.min(upper[i], c[i]);
        c[i] = (lower[i] + upper[i]) / 2;
      } else {
        lower[i] = Math.max(lower[i], c[i]);
        c[i] = upper[i] < 1e9 ? (lower[i] + upper[i]) / 2 : c[i] * 10;
      }
    }
  }
  return { best, bestCost, bestC };
}

/** Finds pertinent negatives ('pn') or positives ('pp') of each example of x [N, ...], with their checks. */
export async function cem(model: Model, x: Tensor, mode: CemMode, options: CemOptions = {}): Promise<CemResult> {
  const started = performance.now();
  if (mode !== 'pn' && mode !== 'pp') throw new Error(`cem: mode must be 'pn' or 'pp', got '${String(mode)}'`);
  const kappa = options.kappa ?? 0;
  const beta = options.beta ?? 0.1;
  const gamma = options.gamma ?? 0;
  const o = { c: options.c ?? 10, searchSteps: options.searchSteps ?? 9, iterations: options.iterations ?? 200, lr: options.lr ?? 0.01 };
  const range = options.range ?? [0, 1];
  const absent = options.absent ?? 0;
  finiteAtLeast('kappa', kappa, 0, false);
  finiteAtLeast('beta', beta, 0, false);
  finiteAtLeast('gamma', gamma, 0, false);
  finiteAtLeast('c', o.c, 0, true);
  finiteAtLeast('lr', o.lr, 0, true);
  for (const [k, v] of [['searchSteps', o.searchSteps], ['iterations', o.iterations]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`cem: ${k} must be an integer ≥ 1, got ${v}`);
  }
  if (!(range.length === 2 && Number.isFinite(range[0]) && Number.isFinite(range[1]) && range[0] <= range[1])) throw new Error(`cem: range must be [lo, hi] with finite lo ≤ hi, got [${range.join(', ')}]`);
  if (!(Number.isFinite(absent) && absent >= range[0] && absent <= range[1])) throw new Error(`cem: absent = ${absent} must lie in the range [${range[0]}, ${range[1]}]`);
  if (gamma > 0 && !options.autoencoder) throw new Error('cem: gamma > 0 needs an autoencoder');
  const s = attackSetup(model, x, { ...options, range }, `cem ${mode}`);
  const x0 = x.data as Float32Array;
  const size = s.n * s.row;

  const logits0 = (await model.run({ [s.input]: x })).outputs[s.output];
  const classes = logits0.size / s.n;
  const t0 = argmaxRows(logits0, classes);
  if (options.autoencoder) {
    await autoencoderLoss(options.autoencoder, x as Tensor<'float32'>).catch((e: Error) => {
      throw new Error(`cem: the autoencoder (${options.autoencoder!.source}) cannot reconstruct x [${x.shape.join(', ')}]: ${e.message}`);
    });
  }
  const isAbsent = (v: number) => Math.abs(v - absent) <= 1e-6;
  const base = mode === 'pn' ? Float32Array.from(x0) : new Float32Array(size).fill(absent);
  const lo = new Float32Array(size);
  const hi = new Float32Array(size);
  for (let j = 0; j < size; j++) {
    if (mode === 'pn') hi[j] = isAbsent(x0[j]) ? range[1] - x0[j] : 0;
    else {
      lo[j] = Math.min(0, x0[j] - absent);
      hi[j] = Math.max(0, x0[j] - absent);
    }
  }
  const plan: Plan = { s, shape: x.shape, mode, base, lo, hi, kappa, beta, gamma, ae: options.autoencoder, t0, classes };
  const { best, bestCost, bestC } = await search(model, plan, o);

  const found = Array.from(bestCost, Number.isFinite);
  const explained = Float32Array.from(best, (d, j) => base[j] + d);
  // A fresh run of what the model is shown: the evidence does not rest on the search's own bookkeeping.
  const after = Tensor.float32(await logitsOf(model, plan, explained, s.n), [s.n, classes]);
  const classesAfter = argmaxRows(after, classes);
  const { margin } = margins(plan, after.data as Float32Array);
  const nonzero = new Int32Array(s.n);
  const feasible = new Int32Array(s.n);
  const support = new Int32Array(s.n);
  let violation = 0;
  for (let j = 0; j < size; j++) {
    const i = Math.floor(j / s.row);
    if (best[j] !== 0) nonzero[i]++;
    if (lo[j] !== hi[j]) feasible[i]++;
    if (!isAbsent(x0[j])) support[i]++;
    violation = Math.max(violation, lo[j] - best[j], best[j] - hi[j]);
  }
  const holds = found.map((f, i) => f && margin[i] <= -kappa && (mode === 'pn' ? classesAfter[i] !== t0[i] : classesAfter[i] === t0[i]));
  const what = mode === 'pn' ? 'x₀ + δ is classified as another class' : 'δ alone is classified as x₀’s class';
  const checks: Check[] = [
    { name: 'found', value: found.map(Number), passed: found.every(Boolean), detail: `a solution within ${o.searchSteps} binary-search steps on c, per example` },
    {
      name: mode === 'pn' ? 'pn changes the class' : 'pp keeps the class',
      value: holds.map(Number),
      passed: holds.every(Boolean),
      detail: `on a fresh run, ${what} with margin ≥ κ = ${kappa}; classes ${Array.from(t0).join(',')} → ${Array.from(classesAfter).join(',')}`,
    },
    { name: 'feasible', value: violation, passed: violation <= 0, detail: mode === 'pn' ? 'δ ≥ 0, only on absent features, x₀ + δ within the range' : 'δ lies between the absent value and x₀, feature by feature' },
    {
      name: 'sparsity',
      value: Array.from(nonzero, (k, i) => k / Math.max(1, mode === 'pn' ? feasible[i] : support[i])),
      passed: mode === 'pp' ? found.every((f, i) => !f || nonzero[i] < support[i]) : undefined,
      detail:
        mode === 'pn'
          ? `features added / absent features of x₀ (${Array.from(nonzero).join(',')} of ${Array.from(feasible).join(',')})`
          : `features kept / x₀'s support (${Array.from(nonzero).join(',')} of ${Array.from(support).join(',')}); passes when the PP is a proper part of x₀`,
    },
  ];
  if (options.autoencoder) {
    const ae = await autoencoderLoss(options.autoencoder, Tensor.float32(explained, x.shape));
    const orig = await autoencoderLoss(options.autoencoder, x as Tensor<'float32'>);
    checks.push({ name: 'autoencoder error', value: Array.from(ae.loss), detail: `‖z − AE(z)‖² of the explained inputs (of x₀: ${Array.from(orig.loss, (v) => v.toPrecision(3)).join(', ')})` });
  }
  return {
    method: mode === 'pn' ? 'cem-pn' : 'cem-pp',
    taxonomy: passive('rules', 'local'),
    mode,
    delta: Tensor.float32(best, x.shape),
    explained: Tensor.float32(explained, x.shape),
    found,
    originalClasses: t0,
    classes: classesAfter,
    nonzero,
    feasible,
    support,
    cost: Float64Array.from(bestCost, (v) => (Number.isFinite(v) ? v : NaN)),
    constants: bestC,
    checks,
    params: { kappa, beta, gamma, ...o, range, absent, autoencoder: Boolean(options.autoencoder) },
    ms: performance.now() - started,
  };
}

/** Pertinent negatives: the least addition to x₀'s absent features that makes it another class. */
export const pertinentNegative = (model: Model, x: Tensor, options: CemOptions = {}) => cem(model, x, 'pn', options);
/** Pertinent positives: the least part of x₀ that alone keeps its class. */
export const pertinentPositive = (model: Model, x: Tensor, options: CemOptions = {}) => cem(model, x, 'pp', options);
