/**
 * Gradient attribution: the gradient itself (Simonyan et al. 2014, saliency as its magnitude), gradient × input
 * (Shrikumar et al. 2016), integrated gradients (Sundararajan et al. 2017) and expected gradients / GradientSHAP
 * (Erion et al. 2021; Lundberg & Lee 2017). Every variant of every example is one row of a few large gradient runs.
 *
 * @example
 * const ig = await integratedGradients(model, { x }, { target: 3, steps: 50, method: 'gauss-legendre' });
 * ig.checks[0]; // completeness: Σ attributions − (f(x) − f(baseline)) per example
 */
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import { Attributor, attributionResult, type AttributionOptions } from './attributor.js';
import { describeBaseline, resolveBaseline, type Baseline } from './baseline.js';
import { completenessCheck, type Attribution, type Check } from './explanation.js';
import { quadrature, type Quadrature } from './quadrature.js';
import { exampleRandom, gaussian } from './seeding.js';

export type Inputs = Readonly<Record<string, Tensor>>;

function result(a: Attributor, method: string, attributions: Float32Array, started: number, checks: Check[], params: Record<string, unknown>, extra?: Attribution['extra']): Attribution {
  return attributionResult(a, { method, attributions, started, checks, params, extra });
}

/** ∂f/∂x (with `abs`, its magnitude: Simonyan et al.'s saliency map before the channel max). */
export async function gradient(model: Model, inputs: Inputs, options: AttributionOptions & { abs?: boolean } = {}): Promise<Attribution> {
  const started = performance.now();
  const { a, grads: g } = await Attributor.withGradient(model, inputs, options);
  if (options.abs) for (let i = 0; i < g.length; i++) g[i] = Math.abs(g[i]);
  return result(a, options.abs ? 'saliency' : 'gradient', g, started, [], { abs: options.abs ?? false });
}

export const saliency = (model: Model, inputs: Inputs, options: AttributionOptions = {}) => gradient(model, inputs, { ...options, abs: true });

/** x ⊙ ∂f/∂x: complete for a bias-free ReLU network (positively homogeneous), which the check reports. */
export async function gradientXInput(model: Model, inputs: Inputs, options: AttributionOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const { a, grads: g } = await Attributor.withGradient(model, inputs, options);
  for (let i = 0; i < g.length; i++) g[i] *= a.x.data[i];
  const zero = await a.scores(a.n, (s, e) => ({ rows: new Float32Array((e - s) * a.rowSize), owner: Int32Array.from({ length: e - s }, (_, i) => s + i) }));
  const check = { ...completenessCheck(new Tensor('float32', g, a.x.shape), a.scores0, zero), passed: undefined };
  return result(a, 'gradient-x-input', g, started, [{ ...check, detail: `${check.detail}; holds only for positively homogeneous models, so not a pass/fail here` }], {});
}

export interface IntegratedGradientsOptions extends AttributionOptions {
  /** Points on the path (default 50). */
  readonly steps?: number;
  /** Quadrature (default 'gauss-legendre', as Captum). */
  readonly method?: Quadrature;
  readonly baseline?: Baseline;
  /** Largest relative completeness delta that passes (default 0.05). */
  readonly tolerance?: number;
}

/** (x − b) ⊙ ∫₀¹ ∂f/∂x(b + α(x − b)) dα, by quadrature; the convergence delta is the completeness check. */
export async function integratedGradients(model: Model, inputs: Inputs, options: IntegratedGradientsOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const a = await Attributor.create(model, inputs, options);
  const steps = options.steps ?? 50;
  const kind = options.method ?? 'gauss-legendre';
  const { alphas, weights } = quadrature(kind, steps);
  const b = resolveBaseline(options.baseline, a.x).data;
  const x = a.x.data;
  const R = a.rowSize;
  const acc = new Float64Array(a.x.size);
  // Row r is step r % steps of example ⌊r / steps⌋: b + α(x − b).
  await a.gradients(
    a.n * steps,
    (start, end) => {
      const rows = new Float32Array((end - start) * R);
      const owner = new Int32Array(end - start);
      for (let r = start; r < end; r++) {
        const i = Math.floor(r / steps);
        const alpha = alphas[r % steps];
        owner[r - start] = i;
        for (let j = 0; j < R; j++) rows[(r - start) * R + j] = b[i * R + j] + alpha * (x[i * R + j] - b[i * R + j]);
      }
      return { rows, owner };
    },
    (start, grads, _scores, owner) => {
      for (let k = 0; k < owner.length; k++) {
        const i = owner[k];
        const w = weights[(start + k) % steps];
        for (let j = 0; j < R; j++) acc[i * R + j] += w * grads[k * R + j];
      }
    },
  );
  const attr = new Float32Array(a.x.size);
  for (let i = 0; i < attr.length; i++) attr[i] = acc[i] * (x[i] - b[i]);
  const fb = await a.scores(a.n, (s, e) => ({ rows: b.slice(s * R, e * R), owner: Int32Array.from({ length: e - s }, (_, i) => s + i) }));
  const check = completenessCheck(new Tensor('float32', attr, a.x.shape), a.scores0, fb, options.tolerance);
  const params = { steps, method: kind, baseline: describeBaseline(options.baseline) };
  return result(a, 'integrated-gradients', attr, started, [{ ...check, name: 'convergence delta' }], params, { baselineScores: Array.from(fb) });
}

export interface ExpectedGradientsOptions extends AttributionOptions {
  /** Reference examples [M, ...] (a background sample of the data), or one baseline. */
  readonly baselines: Tensor;
  /** Samples per example (default 50). */
  readonly samples?: number;
  /** Gaussian noise added to each path point (GradientSHAP's stdevs; default 0). */
  readonly stdev?: number;
  readonly seed?: number;
}

/**
 * E over b ~ baselines, α ~ U(0, 1) of (x − b) ⊙ ∂f/∂x(b + α(x − b)): IG averaged over a reference distribution.
 * Complete in expectation: Σ attributions ≈ f(x) − E f(b), reported as a measurement.
 */
export async function expectedGradients(model: Model, inputs: Inputs, options: ExpectedGradientsOptions): Promise<Attribution> {
  const started = performance.now();
  const a = await Attributor.create(model, inputs, options);
  const S = options.samples ?? 50;
  if (!Number.isInteger(S) || S < 1) throw new Error(`expected gradients: samples must be a positive integer, got ${S}`);
  const refs = options.baselines;
  if (refs?.dtype !== 'float32') throw new Error('expected gradients: baselines must be a float32 tensor [M, ...] of reference examples');
  const R = a.rowSize;
  const M = refs.size / R;
  if (!Number.isInteger(M) || M < 1 || refs.shape.slice(-a.rowShape.length).join() !== a.rowShape.join()) {
    throw new Error(`expected gradients: baselines [${refs.shape.join(', ')}] are not examples of shape [${a.rowShape.join(', ')}]`);
  }
  const stdev = options.stdev ?? 0;
  const x = a.x.data;
  // Draw every (reference, α, noise) up front from each example's own stream: independent of chunking and batching.
  const pick = new Int32Array(a.n * S);
  const alpha = new Float64Array(a.n * S);
  const noise = new Float32Array(stdev > 0 ? a.n * S * R : 0);
  for (let i = 0; i < a.n; i++) {
    const rand = exampleRandom(options.seed ?? 0, x.subarray(i * R, (i + 1) * R));
    for (let s = 0; s < S; s++) {
      pick[i * S + s] = Math.floor(rand() * M);
      alpha[i * S + s] = rand();
      if (stdev > 0) for (let j = 0; j < R; j++) noise[(i * S + s) * R + j] = stdev * gaussian(rand);
    }
  }
  const ref = refs.data as Float32Array;
  const acc = new Float64Array(a.x.size);
  await a.gradients(
    a.n * S,
    (start, end) => {
      const rows = new Float32Array((end - start) * R);
      const owner = new Int32Array(end - start);
      for (let r = start; r < end; r++) {
        const i = Math.floor(r / S);
        owner[r - start] = i;
        const m = pick[r];
        for (let j = 0; j < R; j++) {
          const bj = ref[m * R + j];
          rows[(r - start) * R + j] = bj + alpha[r] * (x[i * R + j] - bj) + (stdev > 0 ? noise[r * R + j] : 0);
        }
      }
      return { rows, owner };
    },
    (start, grads, _s, owner) => {
      for (let k = 0; k < owner.length; k++) {
        const i = owner[k];
        const m = pick[start + k];
        for (let j = 0; j < R; j++) acc[i * R + j] += (grads[k * R + j] * (x[i * R + j] - ref[m * R + j])) / S;
      }
    },
  );
  const attr = Float32Array.from(acc);
  const refScores = await a.scores(M, (s, e) => ({ rows: ref.slice(s * R, e * R), owner: new Int32Array(e - s) }));
  // E f(b) for each example's own target: score the references under each example's seed.
  const meanRef = new Float32Array(a.n);
  if (a.target.classes === null || new Set(a.target.classes).size > 1) {
    const all = await a.scores(a.n * M, (s, e) => ({ rows: Float32Array.from({ length: (e - s) * R }, (_, k) => ref[((s + Math.floor(k / R)) % M) * R + (k % R)]), owner: Int32Array.from({ length: e - s }, (_, k) => Math.floor((s + k) / M)) }));
    for (let i = 0; i < a.n; i++) for (let m = 0; m < M; m++) meanRef[i] += all[i * M + m] / M;
  } else meanRef.fill(refScores.reduce((p, v) => p + v, 0) / M);
  const check = { ...completenessCheck(new Tensor('float32', attr, a.x.shape), a.scores0, meanRef), passed: undefined };
  const name = stdev > 0 ? 'gradient-shap' : 'expected-gradients';
  return result(a, name, attr, started, [{ ...check, detail: `${check.detail}; complete in expectation only, so a measurement` }], { samples: S, stdev, seed: options.seed ?? 0, references: M });
}

export const gradientShap = (model: Model, inputs: Inputs, options: ExpectedGradientsOptions) => expectedGradients(model, inputs, { stdev: 0.09, ...options });
