/**
 * SmoothGrad (Smilkov et al. 2017) as a wrapper over any attribution method: the method's attributions averaged over
 * noisy copies of each example (x + N(0, σ²), σ = noise level × (max − min) of the example); SmoothGrad² averages
 * their squares and VarGrad (Adebayo et al. 2018) takes their variance. All copies of all examples go to the inner
 * method as one batch, which it splits to its memory budget.
 *
 * @example
 * const sg = await smooth(gradient, { samples: 50, noise: 0.15 })(model, { x }, { target: 3 });
 * const sgIg = smooth(integratedGradients, { kind: 'squared' });
 */
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import { Attributor, gatherRows, type AttributionOptions } from './attributor.js';
import type { Attribution } from './explanation.js';
import type { Inputs } from './gradient.js';
import { exampleRandom, gaussian } from './seeding.js';

export type AttributionMethod<O extends AttributionOptions = AttributionOptions> = (model: Model, inputs: Inputs, options?: O) => Promise<Attribution>;

export interface SmoothOptions {
  /** Noisy copies per example (default 50). */
  readonly samples?: number;
  /** σ as a fraction of each example's value range (default 0.15). */
  readonly noise?: number;
  /** 'mean' (SmoothGrad), 'squared' (SmoothGrad²) or 'var' (VarGrad); default 'mean'. */
  readonly kind?: 'mean' | 'squared' | 'var';
  readonly seed?: number;
}

const NAMES = { mean: 'smoothgrad', squared: 'smoothgrad-squared', var: 'vargrad' } as const;

export function smooth<O extends AttributionOptions>(method: AttributionMethod<O>, settings: SmoothOptions = {}): AttributionMethod<O> {
  const S = settings.samples ?? 50;
  const level = settings.noise ?? 0.15;
  const kind = settings.kind ?? 'mean';
  if (!Number.isInteger(S) || S < 1) throw new Error(`smooth: samples must be a positive integer, got ${S}`);
  if (!(level >= 0)) throw new Error(`smooth: noise must be ≥ 0, got ${level}`);
  if (!(kind in NAMES)) throw new Error(`smooth: kind must be mean, squared or var, got '${String(kind)}'`);
  return async (model, inputs, options) => {
    const started = performance.now();
    const a = await Attributor.create(model, inputs, options ?? {});
    const R = a.rowSize;
    const rows = new Float32Array(a.n * S * R); // [N·S, ...]: copy s of example i at row i·S + s
    const owner = new Int32Array(a.n * S);
    for (let i = 0; i < a.n; i++) {
      const ex = a.x.data.subarray(i * R, (i + 1) * R);
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of ex) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
      const sigma = level * (hi - lo);
      const rand = exampleRandom(settings.seed ?? 0, ex);
      for (let s = 0; s < S; s++) {
        owner[i * S + s] = i;
        for (let j = 0; j < R; j++) rows[(i * S + s) * R + j] = ex[j] + sigma * gaussian(rand);
      }
    }
    const inner = await method(a.runModel, a.feeds(rows, owner), {
      ...(options ?? {}),
      wrt: a.wrt,
      target: { output: a.target.output, seed: gatherRows(a.target.seed, owner) },
    } as O);
    const per = inner.attributions.data;
    const out = new Float32Array(a.n * R);
    for (let i = 0; i < a.n; i++) {
      for (let j = 0; j < R; j++) {
        let m1 = 0;
        let m2 = 0;
        for (let s = 0; s < S; s++) {
          const v = per[(i * S + s) * R + j];
          m1 += v / S;
          m2 += (v * v) / S;
        }
        out[i * R + j] = kind === 'mean' ? m1 : kind === 'squared' ? m2 : m2 - m1 * m1;
      }
    }
    return {
      method: `${NAMES[kind]}(${inner.method})`,
      taxonomy: inner.taxonomy,
      wrt: a.wrtName,
      attributions: new Tensor('float32', out, a.x.shape),
      output: a.target.output,
      targets: a.target.classes,
      scores: a.scores0,
      checks: [],
      params: { ...inner.params, samples: S, noise: level, kind, seed: settings.seed ?? 0 },
      ms: performance.now() - started,
    };
  };
}
