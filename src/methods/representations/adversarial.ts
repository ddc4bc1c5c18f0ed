/**
 * Adversarial examples as an interpretability tool (Räuker et al. 2023, V: adversarial examples): FGSM (Goodfellow
 * et al. 2015, "Explaining and harnessing adversarial examples") and PGD (Madry et al. 2018, "Towards deep learning
 * models resistant to adversarial attacks") in the input space, under L∞ or L2 budgets. The loss gradient is the
 * model's input gradient seeded with ∂CE/∂logits = softmax − onehot(label), computed on the host from a forward run;
 * a targeted attack descends the cross-entropy of the target class instead. Every result carries its evidence: each
 * perturbation within ε, the success rate, and random noise of the same norm, which must flip far fewer predictions.
 *
 * @example
 * const r = await pgd(model, x, { eps: 0.1, alpha: 0.02, steps: 10, norm: 'linf', seed: 1 });
 * r.successRate; r.checks; // then attackUnits(model, x, r.adversarial, 'c2.relu') for the units it exploits
 */
import { argmaxRows, crossEntropySeed } from '../../util/softmax.js';
import { mulberry32 } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { passive, RAUKER_V, type MethodInfo } from '../taxonomy.js';
import { attackUnits, featureAdversary } from './feature-adversary.js';

export type AttackNorm = 'linf' | 'l2';

export interface AttackOptions {
  /** Radius of the perturbation ball (≥ 0). */
  readonly eps: number;
  readonly norm?: AttackNorm;
  /** Untargeted: the labels to move away from (default: the clean predictions). */
  readonly labels?: ArrayLike<number>;
  /** Targeted: one class for all examples or one per example; the attack descends its cross-entropy. */
  readonly target?: number | ArrayLike<number>;
  /** Valid input range, default [0, 1]; null for unbounded inputs. */
  readonly range?: readonly [number, number] | null;
  /** The float input attacked (default: the model's only float32 input) and the logits output (default: the first). */
  readonly input?: string;
  readonly output?: string;
  /** Examples per gradient call (default 256). */
  readonly batchSize?: number;
  /** Seed of the random-noise baseline (and of PGD's random start). */
  readonly seed?: number;
}

export interface PgdOptions extends AttackOptions {
  /** Step size (> 0) and number of steps (≥ 1). */
  readonly alpha: number;
  readonly steps: number;
  /** Start at a uniform point of the L∞ ball (a random point of the L2 ball), as Madry et al. */
  readonly randomStart?: boolean;
}

export interface AttackResult {
  readonly method: 'fgsm' | 'pgd';
  readonly norm: AttackNorm;
  readonly eps: number;
  /** Adversarial inputs, the shape of x. */
  readonly adversarial: Tensor<'float32'>;
  /** The class each example is moved away from (untargeted) or towards (targeted), per example. */
  readonly labels: Int32Array;
  readonly targeted: boolean;
  readonly cleanPredictions: Int32Array;
  readonly predictions: Int32Array;
  /** Untargeted: prediction ≠ label; targeted: prediction = target. */
  readonly success: readonly boolean[];
  readonly successRate: number;
  /** ‖x_adv − x‖ in the attack's norm, per example. */
  readonly norms: Float64Array;
  /** The fraction of examples random noise of each example's perturbation norm flips (from the clean prediction). */
  readonly noiseFlipRate: number;
  readonly checks: Check[];
}

/** Validated names and sizes shared by the attacks. */
export interface AttackSetup {
  readonly input: string;
  readonly output: string;
  readonly n: number;
  readonly row: number;
}

export function attackSetup(model: Model, x: Tensor, options: { input?: string; output?: string; range?: readonly [number, number] | null }, what: string): AttackSetup {
  const floats = model.inputs.filter((i) => i.dtype === 'float32').map((i) => i.name);
  const input = options.input ?? (floats.length === 1 ? floats[0] : undefined);
  if (input === undefined) throw new Error(`${what}: the model has no single float32 input (inputs: ${model.inputs.map((i) => i.name).join(', ')}); name one with { input }`);
  if (!floats.includes(input)) throw new Error(`${what}: '${input}' is not a float32 input of the model (float inputs: ${floats.join(', ') || 'none'})`);
  const output = options.output ?? model.outputs[0].name;
  if (!model.outputs.some((o) => o.name === output)) throw new Error(`${what}: unknown output '${output}' (outputs: ${model.outputs.map((o) => o.name).join(', ')})`);
  if (x.dtype !== 'float32') throw new Error(`${what}: x must be float32, got ${x.dtype}`);
  if (x.rank < 2 || x.shape[0] < 1) throw new Error(`${what}: x must be [N, ...] with N ≥ 1 examples, got [${x.shape.join(', ')}]`);
  const d = x.data as Float32Array;
  const range = options.range === undefined ? ([0, 1] as const) : options.range;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i])) throw new Error(`${what}: x holds ${d[i]} at flat index ${i}`);
    if (range && (d[i] < range[0] || d[i] > range[1])) {
      throw new Error(`${what}: x[${i}] = ${d[i]} is outside the valid range [${range[0]}, ${range[1]}] (not an image in that range? pass { range: null } for unbounded inputs)`);
    }
  }
  const n = x.shape[0];
  return { input, output, n, row: x.size / n };
}

function positive(what: string, name: string, v: number, allowZero: boolean): void {
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) throw new Error(`${what}: ${name} must be a finite number ${allowZero ? '≥' : '>'} 0, got ${v}`);
}

/** Logits of x (the shape given) in batches of `batch` rows. */
async function logitsOf(model: Model, s: AttackSetup, x: Float32Array, shape: readonly number[], batch: number): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  const n = shape[0];
  for (let a = 0; a < n; a += batch) {
    const b = Math.min(n, a + batch);
    const t = Tensor.float32(x.subarray(a * s.row, b * s.row), [b - a, ...shape.slice(1)]);
    parts.push((await model.run({ [s.input]: t })).outputs[s.output].data as Float32Array);
  }
  const out = new Float32Array(parts.reduce((k, p) => k + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function perRow(v: number | ArrayLike<number> | undefined, n: number, classes: number, what: string, name: string): Int32Array | undefined {
  if (v === undefined) return undefined;
  const a = typeof v === 'number' ? new Array<number>(n).fill(v) : Array.from(v);
  if (a.length !== n) throw new Error(`${what}: ${name} has ${a.length} entries for ${n} examples`);
  a.forEach((c, i) => {
    if (!Number.isInteger(c) || c < 0 || c >= classes) throw new Error(`${what}: ${name}[${i}] = ${c} is not a class in [0, ${classes})`);
  });
  return Int32Array.from(a);
}

/** Projects d (one row) onto the ε-ball of the norm, then x0 + d onto the range; writes x0 + d into out. */
function project(x0: Float32Array, d: Float64Array, eps: number, norm: AttackNorm, range: readonly [number, number] | null, out: Float32Array): void {
  if (norm === 'l2') {
    let s = 0;
    for (const v of d) s += v * v;
    const f = Math.sqrt(s) > eps ? eps / Math.sqrt(s) : 1;
    for (let j = 0; j < d.length; j++) d[j] *= f;
  } else for (let j = 0; j < d.length; j++) d[j] = Math.max(-eps, Math.min(eps, d[j]));
  for (let j = 0; j < d.length; j++) {
    let v = x0[j] + d[j];
    if (range) v = Math.max(range[0], Math.min(range[1], v));
    out[j] = v;
    // Float32 rounding of x0 + d may land a hair outside the ball; step back to the float inside it.
    if (norm === 'linf' && Math.abs(out[j] - x0[j]) > eps) out[j] = Math.fround(x0[j] + Math.sign(d[j]) * eps * (1 - 2 ** -23));
  }
}

function rowNorm(a: Float32Array, b: Float32Array, norm: AttackNorm): number {
  let s = 0;
  for (let j = 0; j < a.length; j++) s = norm === 'l2' ? s + (a[j] - b[j]) ** 2 : Math.max(s, Math.abs(a[j] - b[j]));
  return norm === 'l2' ? Math.sqrt(s) : s;
}

/** Euclidean norm (no spread: rows can be large). */
export function l2(v: ArrayLike<number>): number {
  let s = 0;
  for (let j = 0; j < v.length; j++) s += v[j] * v[j];
  return Math.sqrt(s);
}

export function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

interface AttackPlan extends PgdOptions {
  readonly method: 'fgsm' | 'pgd';
}

async function attack(model: Model, x: Tensor, o: AttackPlan): Promise<AttackResult> {
  const what = o.method;
  positive(what, 'eps', o.eps, true);
  positive(what, 'alpha', o.alpha, false);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`${what}: steps must be an integer ≥ 1, got ${o.steps}`);
  const norm = o.norm ?? 'linf';
  if (norm !== 'linf' && norm !== 'l2') throw new Error(`${what}: norm must be 'linf' or 'l2', got '${String(norm)}'`);
  const range = o.range === undefined ? ([0, 1] as const) : o.range;
  const s = attackSetup(model, x, o, what);
  const batch = o.batchSize ?? 256;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`${what}: batchSize must be an integer ≥ 1, got ${batch}`);
  const x0 = x.data as Float32Array;
  const clean = await logitsOf(model, s, x0, x.shape, batch);
  const classes = clean.length / s.n;
  const cleanPred = argmaxRows(Tensor.float32(clean, [s.n, classes]), classes);
  const target = perRow(o.target, s.n, classes, what, 'target');
  const labels = target ?? perRow(o.labels, s.n, classes, what, 'labels') ?? cleanPred;
  const sign = target ? -1 : 1; // ascend the label's cross-entropy, or descend the target's
  const rand = mulberry32(o.seed ?? 0);

  const adv = new Float32Array(x0);
  const d = new Float64Array(s.row);
  if (o.randomStart) {
    for (let i = 0; i < s.n; i++) {
      if (norm === 'linf') for (let j = 0; j < s.row; j++) d[j] = (2 * rand() - 1) * o.eps;
      else {
        for (let j = 0; j < s.row; j++) d[j] = gaussian(rand);
        const r = o.eps * rand() ** (1 / s.row) / l2(d);
        for (let j = 0; j < s.row; j++) d[j] *= r;
      }
      project(x0.subarray(i * s.row, (i + 1) * s.row), d, o.eps, norm, range, adv.subarray(i * s.row, (i + 1) * s.row));
    }
  }
  for (let a = 0; a < s.n; a += batch) {
    const b = Math.min(s.n, a + batch);
    const shape = [b - a, ...x.shape.slice(1)];
    for (let step = 0; step < o.steps; step++) {
      const xa = Tensor.float32(adv.slice(a * s.row, b * s.row), shape);
      const logits = (await model.run({ [s.input]: xa })).outputs[s.output];
      const seed = crossEntropySeed(logits, labels.subarray(a, b));
      const g = (await model.grad({ [s.input]: xa }, { of: s.output, wrt: [s.input], seed })).grads[s.input].data as Float32Array;
      for (let i = a; i < b; i++) {
        const gi = g.subarray((i - a) * s.row, (i - a + 1) * s.row);
        const scale = norm === 'l2' ? o.alpha / Math.max(1e-12, l2(gi)) : o.alpha;
        for (let j = 0; j < s.row; j++) {
          const step1 = norm === 'l2' ? gi[j] * scale : Math.sign(gi[j]) * scale;
          d[j] = adv[i * s.row + j] + sign * step1 - x0[i * s.row + j];
        }
        project(x0.subarray(i * s.row, (i + 1) * s.row), d, o.eps, norm, range, adv.subarray(i * s.row, (i + 1) * s.row));
      }
    }
  }
  const predictions = argmaxRows(Tensor.float32(await logitsOf(model, s, adv, x.shape, batch), [s.n, classes]), classes);
  const success = Array.from(predictions, (p, i) => (target ? p === target[i] : p !== labels[i]));
  const norms = Float64Array.from({ length: s.n }, (_, i) => rowNorm(adv.subarray(i * s.row, (i + 1) * s.row), x0.subarray(i * s.row, (i + 1) * s.row), norm));
  const successRate = success.filter(Boolean).length / s.n;

  // Baseline: random noise of each example's perturbation norm (random signs × ‖δ‖∞, or a Gaussian direction × ‖δ‖₂).
  const noisy = new Float32Array(x0.length);
  for (let i = 0; i < s.n; i++) {
    for (let j = 0; j < s.row; j++) d[j] = norm === 'linf' ? (rand() < 0.5 ? -1 : 1) * norms[i] : gaussian(rand);
    if (norm === 'l2') {
      const f = norms[i] / Math.max(1e-12, l2(d));
      for (let j = 0; j < s.row; j++) d[j] *= f;
    }
    project(x0.subarray(i * s.row, (i + 1) * s.row), d, o.eps, norm, range, noisy.subarray(i * s.row, (i + 1) * s.row));
  }
  const noisePred = argmaxRows(Tensor.float32(await logitsOf(model, s, noisy, x.shape, batch), [s.n, classes]), classes);
  const attackFlips = Array.from(predictions, (p, i) => p !== cleanPred[i]).filter(Boolean).length / s.n;
  const noiseFlipRate = Array.from(noisePred, (p, i) => p !== cleanPred[i]).filter(Boolean).length / s.n;
  const maxNorm = norms.reduce((m, v) => Math.max(m, v), 0);
  const checks: Check[] = [
    {
      name: 'within-eps',
      value: maxNorm,
      passed: maxNorm <= o.eps * (1 + 1e-6),
      detail: `largest ${norm} perturbation ${maxNorm.toExponential(4)} vs ε = ${o.eps}${range ? `; inputs kept in [${range[0]}, ${range[1]}]` : ''}`,
    },
    { name: 'success-rate', value: successRate, detail: `${target ? 'targeted' : 'untargeted'} ${what}: ${(100 * successRate).toFixed(1)}% of ${s.n} examples` },
    {
      name: 'beats-random-noise',
      value: noiseFlipRate,
      passed: attackFlips > 0 && noiseFlipRate <= 0.5 * attackFlips,
      detail: `random noise of the same ${norm} norm flips ${(100 * noiseFlipRate).toFixed(1)}% of predictions; the attack ${(100 * attackFlips).toFixed(1)}% (passes when noise flips at most half as many)`,
    },
  ];
  return {
    method: what,
    norm,
    eps: o.eps,
    adversarial: Tensor.float32(adv, x.shape),
    labels,
    targeted: target !== undefined,
    cleanPredictions: cleanPred,
    predictions,
    success,
    successRate,
    norms,
    noiseFlipRate,
    checks,
  };
}

/** FGSM (Goodfellow et al. 2015): x + ε·sign(∇ₓCE(label)), or x − ε·sign(∇ₓCE(target)) when targeted; L∞ only. */
export async function fgsm(model: Model, x: Tensor, options: AttackOptions): Promise<AttackResult> {
  if (options.norm !== undefined && options.norm !== 'linf') throw new Error(`fgsm: FGSM is an L∞ attack; got norm '${options.norm}' (use pgd for L2)`);
  return attack(model, x, { ...options, method: 'fgsm', norm: 'linf', alpha: Number.isFinite(options.eps) && options.eps > 0 ? options.eps : 1, steps: 1 });
}

/** PGD (Madry et al. 2018): `steps` signed (L∞) or normalised (L2) gradient steps of size α, each projected onto the ε-ball and the range. */
export async function pgd(model: Model, x: Tensor, options: PgdOptions): Promise<AttackResult> {
  return attack(model, x, { ...options, method: 'pgd' });
}

export const ADVERSARY_METHODS = {
  fgsm: {
    info: { title: 'FGSM adversarial examples', reference: 'Goodfellow et al. 2015, Explaining and harnessing adversarial examples', taxonomy: passive('hidden semantics', 'local', RAUKER_V.adversaries) },
    run: fgsm,
  },
  pgd: {
    info: { title: 'PGD adversarial examples', reference: 'Madry et al. 2018, Towards deep learning models resistant to adversarial attacks', taxonomy: passive('hidden semantics', 'local', RAUKER_V.adversaries), stochastic: true },
    run: pgd,
  },
  'feature-adversary': {
    info: { title: 'Feature-level adversaries at a site', reference: 'Casper et al. 2022, Robust feature-level adversaries are interpretability tools', taxonomy: passive('hidden semantics', 'local', RAUKER_V.adversaries), stochastic: true },
    run: featureAdversary,
  },
  'attack-units': {
    info: { title: 'Units an attack exploits', reference: 'Räuker et al. 2023, Toward transparent AI (V: adversarial examples)', taxonomy: passive('hidden semantics', 'semi-local', RAUKER_V.adversaries), stochastic: true },
    run: attackUnits,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
