/**
 * Attribution of one hidden unit u of a site to the input (Räuker et al. 2023, III-E). The unit is a flat index into
 * one example's value at `site`, or one index per axis; it is the same unit for every example. Neuron gradient and
 * neuron IG explain h_u itself (their scores are h_u(x); the `target` option is not used); neuron conductance explains
 * the target through u.
 *
 * - Neuron gradient: ∂h_u/∂x.
 * - Neuron integrated gradients: integrated gradients (Sundararajan et al. 2017) of h_u instead of the output:
 *   complete, Σ = h_u(x) − h_u(b), checked.
 * - Neuron conductance (Dhamdhere, Sundararajan, Yan, "How Important Is a Neuron?", 2018): the part of input i's
 *   integrated gradient that flows through u, (x_i − b_i) · ∫₀¹ ∂f/∂h_u(x_α) · ∂h_u/∂x_i(x_α) dα along
 *   x_α = b + α(x − b), by quadrature; f is the target score. Summed over i it is u's conductance, and summed over every
 *   unit of a layer that separates input from output it is f(x) − f(b).
 *
 * @example
 * const ng = await neuronGradient(model, { x }, { site: 'c1.conv', neuron: [3, 14, 14] });
 * const nc = await neuronConductance(model, { x }, { site: 'c1.conv', neuron: [3, 14, 14], target: 7, steps: 32 });
 */
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import { NEURON_ATTRIBUTION, passiveAttribution } from '../taxonomy.js';
import { Attributor, type AttributionOptions } from './attributor.js';
import { resolveBaseline, type Baseline } from './baseline.js';
import type { Attribution } from './explanation.js';
import { describeBaseline } from './baseline.js';
import { gradient, integratedGradients } from './gradient.js';
import { assemble, examplesPerGroup, floatSite, neuronSeed, relabel, sameTarget, siteAlongPath } from './hidden-shared.js';
import { quadrature, type Quadrature } from './quadrature.js';

type Inputs = Readonly<Record<string, Tensor>>;

export interface NeuronOptions extends AttributionOptions {
  /** The site holding the unit (required). */
  readonly site?: string;
  /** The unit: a flat index into one example's value at `site`, or one index per axis (required). */
  readonly neuron?: number | readonly number[];
  /** Path points (default 50). */
  readonly steps?: number;
  /** Baseline of the input (default zero). */
  readonly baseline?: Baseline;
  /** Quadrature of the path integral (default 'gauss-legendre'). */
  readonly method?: Quadrature;
  readonly tolerance?: number;
}

const neuronTaxonomy = () => passiveAttribution('local', NEURON_ATTRIBUTION);

/** The one-hot seed of the unit over the site's value for these inputs. */
async function unitSeed(model: Model, inputs: Inputs, hValue: string, options: NeuronOptions): Promise<{ seed: Tensor<'float32'>; flat: number }> {
  const h = (await model.run(inputs, { capture: [hValue], signal: options.signal })).captures[hValue];
  if (h.rank < 2) throw new Error(`neuron: site '${options.site}' is [${h.shape.join(', ')}], not [N, ...] with units per example`);
  return neuronSeed(options.neuron, h.shape.slice(1), h.shape[0], options.site!);
}

/** ∂h_u/∂x for each example. */
export async function neuronGradient(model: Model, inputs: Inputs, options: NeuronOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const hValue = floatSite(model, options.site, 'neuron gradient');
  const { seed, flat } = await unitSeed(model, inputs, hValue, options);
  const target = { output: hValue, seed };
  const r = await gradient(model, inputs, { ...options, target });
  return relabel(r, 'neuron-gradient', neuronTaxonomy(), { site: options.site, neuron: flat }, started);
}

/** Integrated gradients of h_u; complete with respect to h_u(x) − h_u(b). */
export async function neuronIntegratedGradients(model: Model, inputs: Inputs, options: NeuronOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const hValue = floatSite(model, options.site, 'neuron integrated gradients');
  const { seed, flat } = await unitSeed(model, inputs, hValue, options);
  const target = { output: hValue, seed };
  const r = await integratedGradients(model, inputs, { ...options, target });
  return relabel(r, 'neuron-integrated-gradients', neuronTaxonomy(), { site: options.site, neuron: flat }, started);
}

/** The target's integrated gradients that flow through unit u (Dhamdhere et al. 2018). */
export async function neuronConductance(model: Model, inputs: Inputs, options: NeuronOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const what = 'neuron conductance';
  const hValue = floatSite(model, options.site, what);
  const m = options.steps ?? 50;
  const kind = options.method ?? 'gauss-legendre';
  const { alphas, weights } = quadrature(kind, m); // validates steps
  const aIn = await Attributor.create(model, inputs, options);
  const aSite = await Attributor.create(model, inputs, { ...options, wrt: options.site, target: sameTarget(aIn) });
  const { seed, flat } = neuronSeed(options.neuron, aSite.rowShape, aSite.n, options.site!);
  const unit = { output: hValue, seed };
  const aUnit = await Attributor.create(model, inputs, { ...options, target: unit });
  const b = resolveBaseline(options.baseline, aIn.x).data;
  const R = aIn.rowSize;
  const U = aSite.rowSize;
  const x = aIn.x.data;
  const acc = new Float64Array(aIn.x.size);
  const group = examplesPerGroup(aIn, m, R + U);
  for (let i0 = 0; i0 < aIn.n; i0 += group) {
    const i1 = Math.min(aIn.n, i0 + group);
    // ∂f/∂h_u at each path point (row (i − i0)·m + k), from h there.
    const { h } = await siteAlongPath(aIn, b, alphas, hValue, i0, i1);
    const dfdu = new Float32Array((i1 - i0) * m);
    await aSite.gradients(
      (i1 - i0) * m,
      (start, end) => ({ rows: h.slice(start * U, end * U), owner: Int32Array.from({ length: end - start }, (_, q) => i0 + Math.floor((start + q) / m)) }),
      (start, grads, _s, owner) => {
        for (let q = 0; q < owner.length; q++) dfdu[start + q] = grads[q * U + flat];
      },
    );
    // ∂h_u/∂x at the same points, weighted by the quadrature and ∂f/∂h_u.
    await aUnit.gradients(
      (i1 - i0) * m,
      (start, end) => {
        const rows = new Float32Array((end - start) * R);
        const owner = new Int32Array(end - start);
        for (let r = start; r < end; r++) {
          const i = i0 + Math.floor(r / m);
          const alpha = alphas[r % m];
          owner[r - start] = i;
          for (let j = 0; j < R; j++) rows[(r - start) * R + j] = b[i * R + j] + alpha * (x[i * R + j] - b[i * R + j]);
        }
        return { rows, owner };
      },
      (start, grads, _s, owner) => {
        for (let q = 0; q < owner.length; q++) {
          const w = weights[(start + q) % m] * dfdu[start + q];
          const i = owner[q];
          for (let j = 0; j < R; j++) acc[i * R + j] += w * grads[q * R + j];
        }
      },
    );
  }
  const attr = new Float32Array(aIn.x.size);
  for (let j = 0; j < attr.length; j++) attr[j] = acc[j] * (x[j] - b[j]);
  const attributions = new Tensor('float32', attr, aIn.x.shape);
  const through = Array.from({ length: aIn.n }, (_, i) => attr.subarray(i * R, (i + 1) * R).reduce((s, v) => s + v, 0));
  return assemble(aIn, {
    method: 'neuron-conductance',
    taxonomy: neuronTaxonomy(),
    attributions,
    checks: [{ name: 'conductance of the unit', value: through, detail: `Σ_i attributions per example: the part of f(x) − f(b) that flows through unit ${flat} of '${options.site}'` }],
    params: { site: options.site, neuron: flat, steps: m, method: kind, baseline: describeBaseline(options.baseline) },
    started,
  });
}
