/**
 * Infidelity and max-sensitivity (Yeh, Hsieh, Suggala, Inouye, Ravikumar 2019, "On the (In)fidelity and Sensitivity
 * of Explanations", NeurIPS).
 *
 * Infidelity, Monte Carlo over S seeded Gaussian perturbations I ~ N(0, σ²·Id):
 *
 *   INFD(Φ, f, x) = E_I[(Iᵀ Φ − (f(x) − f(x − I)))²]
 *
 * Both the plain estimate (the definition above) and the optimally scaled one (Φ replaced by βΦ with β = E[IᵀΦ · Δf] /
 * E[(IᵀΦ)²], as the authors' code does so that the scale of Φ does not count) are computed; `scaling` picks which
 * goes in `values` (default 'none': the plain definition), the other is in `extra`. Lower is better. For a linear f
 * and Φ = ∇f, Iᵀ∇f = f(x) − f(x − I) exactly, so the infidelity is 0.
 *
 * Max-sensitivity: max over S points x' drawn uniformly from the L∞ ball of radius r around x of
 * ‖Φ(x') − Φ(x)‖₂ / ‖Φ(x)‖₂ (the paper's SENS_MAX, here relative to ‖Φ(x)‖; the absolute value is in `extra`),
 * re-running the attribution method on all perturbed copies in one batch. Lower is better.
 *
 * @example
 * const gxi = await gradientXInput(model, { x }, { target: 3 });
 * const inf = await infidelity(model, { x }, gxi, { samples: 200, sigma: 0.1, seed: 1 });
 * const sens = await maxSensitivity(model, { x }, 'gradient', { target: 3, radius: 0.05, samples: 10 });
 */
import { Attributor } from '../methods/attribution/attributor.js';
import type { Attribution } from '../methods/attribution/explanation.js';
import type { ExplainOptions } from '../methods/attribution/method.js';
import { mixSeed, mulberry32 } from '../data/datasets/random.js';
import type { Model } from '../model/model.js';
import { Tensor } from '../runtime/tensor.js';
import { checkAttributionShape, explainWith, gauss, mean, positiveInt, targetOf, type Evaluation, type Inputs, type MethodRef, type MetricBaseOptions } from './evaluation.js';

export interface InfidelityOptions extends MetricBaseOptions {
  /** Perturbations per example (default 100). */
  readonly samples?: number;
  /** Standard deviation of the perturbation (default 0.1 × each example's max − min, or 0.1 for a constant example). */
  readonly sigma?: number;
  readonly seed?: number;
  /** Which estimate goes in `values`: 'none' (default, the definition) or 'optimal' (Φ scaled by the best β). */
  readonly scaling?: 'none' | 'optimal';
}

/** Per-example standard deviation: the given one, or a fraction of each example's value range. */
function perExample(x: Float32Array, n: number, R: number, given: number | undefined, fraction: number, what: string): Float64Array {
  if (given !== undefined && !(Number.isFinite(given) && given > 0)) throw new Error(`${what} must be a positive number, got ${given}`);
  return Float64Array.from({ length: n }, (_, i) => {
    if (given !== undefined) return given;
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < R; j++) [lo, hi] = [Math.min(lo, x[i * R + j]), Math.max(hi, x[i * R + j])];
    return hi > lo ? fraction * (hi - lo) : fraction;
  });
}

export async function infidelity(model: Model, inputs: Inputs, attribution: Attribution, options: InfidelityOptions = {}): Promise<Evaluation> {
  const started = performance.now();
  const S = positiveInt('infidelity', 'samples', options.samples ?? 100);
  const scaling = options.scaling ?? 'none';
  if (scaling !== 'none' && scaling !== 'optimal') throw new Error(`infidelity: scaling must be 'none' or 'optimal', got '${String(scaling)}'`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`infidelity: seed must be an integer, got ${seed}`);
  const a = await Attributor.create(model, inputs, { ...options, wrt: options.wrt ?? attribution.wrt, target: targetOf(attribution, options.target) });
  const phi = checkAttributionShape('infidelity', attribution, a.x.shape);
  const R = a.rowSize;
  const x = a.x.data;
  const sigma = perExample(x, a.n, R, options.sigma, 0.1, 'infidelity: sigma');
  const dot = new Float64Array(a.n * S); // Iᵀ Φ of perturbation r % S of example ⌊r / S⌋
  const fMinus = await a.scores(a.n * S, (s, e) => {
    const rows = new Float32Array((e - s) * R); // [rows, ...]: x − I
    const owner = new Int32Array(e - s);
    for (let r = s; r < e; r++) {
      const i = Math.floor(r / S);
      owner[r - s] = i;
      const rand = mulberry32(mixSeed(seed, i, r % S)); // one stream per perturbation: independent of chunking
      let d = 0;
      for (let j = 0; j < R; j++) {
        const noise = sigma[i] * gauss(rand);
        rows[(r - s) * R + j] = x[i * R + j] - noise;
        d += noise * phi[i * R + j];
      }
      dot[r] = d;
    }
    return { rows, owner };
  });
  const plain: number[] = [];
  const scaled: number[] = [];
  const beta: number[] = [];
  for (let i = 0; i < a.n; i++) {
    let ab = 0;
    let aa = 0;
    for (let s = 0; s < S; s++) {
      const d = dot[i * S + s];
      ab += d * (a.scores0[i] - fMinus[i * S + s]);
      aa += d * d;
    }
    const b = aa > 0 ? ab / aa : 0;
    let e0 = 0;
    let e1 = 0;
    for (let s = 0; s < S; s++) {
      const d = dot[i * S + s];
      const df = a.scores0[i] - fMinus[i * S + s];
      e0 += (d - df) ** 2 / S;
      e1 += (b * d - df) ** 2 / S;
    }
    plain.push(e0);
    scaled.push(e1);
    beta.push(b);
  }
  const values = scaling === 'none' ? plain : scaled;
  return {
    metric: 'infidelity',
    method: attribution.method,
    values,
    mean: mean(values),
    higherIsBetter: false,
    checks: [],
    params: { samples: S, sigma: options.sigma ?? '0.1 × example range', seed, scaling, perturbation: 'gaussian' },
    extra: { [scaling === 'none' ? 'optimallyScaled' : 'unscaled']: scaling === 'none' ? scaled : plain, beta },
    ms: performance.now() - started,
  };
}

export interface SensitivityOptions extends MetricBaseOptions {
  /** Perturbed copies per example (default 10). */
  readonly samples?: number;
  /** L∞ radius (default 0.02 × each example's max − min, or 0.02 for a constant example). */
  readonly radius?: number;
  readonly seed?: number;
  /** Options of the attribution method (its steps, baseline, samples…). */
  readonly explain?: ExplainOptions;
}

/** Max-sensitivity of `method` around each example; re-runs the method on all perturbed copies at once. */
export async function maxSensitivity(model: Model, inputs: Inputs, method: MethodRef, options: SensitivityOptions = {}): Promise<Evaluation> {
  const S = positiveInt('max-sensitivity', 'samples', options.samples ?? 10);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`max-sensitivity: seed must be an integer, got ${seed}`);
  const base = { ...options.explain, target: options.target ?? options.explain?.target, wrt: options.wrt ?? options.explain?.wrt, maxBatchBytes: options.maxBatchBytes, signal: options.signal };
  const phi0 = await explainWith(method, model, inputs, base);
  const started = performance.now();
  const a = await Attributor.create(model, inputs, { ...base, wrt: phi0.wrt, target: targetOf(phi0, base.target) });
  const phi = checkAttributionShape('max-sensitivity', phi0, a.x.shape);
  const R = a.rowSize;
  const x = a.x.data;
  const radius = perExample(x, a.n, R, options.radius, 0.02, 'max-sensitivity: radius');
  const rows = new Float32Array(a.n * S * R); // [N·S, ...]: copy s of example i at row i·S + s
  const owner = new Int32Array(a.n * S);
  for (let r = 0; r < a.n * S; r++) {
    const i = Math.floor(r / S);
    owner[r] = i;
    const rand = mulberry32(mixSeed(seed, i, r % S));
    for (let j = 0; j < R; j++) rows[r * R + j] = x[i * R + j] + radius[i] * (2 * rand() - 1);
  }
  // Each copy explains its example's own target: the classes repeated, or the seed rows repeated.
  const classes = a.target.classes;
  const seedRow = a.target.seed.size / a.n;
  const seedRows = new Float32Array(a.n * S * seedRow);
  for (let r = 0; r < owner.length; r++) seedRows.set(a.target.seed.data.subarray(owner[r] * seedRow, (owner[r] + 1) * seedRow), r * seedRow);
  const target = classes ? Array.from(owner, (i) => classes[i]) : { output: a.target.output, seed: new Tensor('float32', seedRows, [a.n * S, ...a.target.seed.shape.slice(1)]) };
  const perturbed = await explainWith(method, a.runModel, a.feeds(rows, owner), { ...base, wrt: a.wrt, target });
  const per = perturbed.attributions.data;
  const relative: number[] = [];
  const absolute: number[] = [];
  for (let i = 0; i < a.n; i++) {
    let norm = 0;
    for (let j = 0; j < R; j++) norm += phi[i * R + j] ** 2;
    let worst = 0;
    for (let s = 0; s < S; s++) {
      let d = 0;
      for (let j = 0; j < R; j++) d += (per[(i * S + s) * R + j] - phi[i * R + j]) ** 2;
      worst = Math.max(worst, d);
    }
    absolute.push(Math.sqrt(worst));
    relative.push(worst === 0 ? 0 : Math.sqrt(worst / norm)); // ‖Φ(x)‖ = 0 with any change: Infinity
  }
  return {
    metric: 'max-sensitivity',
    method: phi0.method,
    values: relative,
    mean: mean(relative),
    higherIsBetter: false,
    checks: [],
    params: { samples: S, radius: options.radius ?? '0.02 × example range', seed, ball: 'L∞, uniform', norm: 'L2, relative to ‖Φ(x)‖' },
    extra: { absolute },
    ms: performance.now() - started,
  };
}
