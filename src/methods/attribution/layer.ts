/**
 * Attribution to the units of a hidden layer (Räuker et al. 2023, III-E): how much each unit h_u of a site carries
 * of the target score. Attributions have the site's shape [N, ...h].
 *
 * - Layer activation × gradient: h ⊙ ∂f/∂h, gradient × input (Shrikumar et al. 2016) with the layer as the input.
 * - Layer integrated gradients: integrated gradients (Sundararajan et al. 2017, "Axiomatic Attribution for Deep
 *   Networks") of the network above the site, along the straight path in h-space from h(baseline) to h(x):
 *   (h(x) − h(b)) ⊙ ∫₀¹ ∂f/∂h(h(b) + α(h(x) − h(b))) dα. The baseline is one of the input (`wrt`), mapped to the site.
 *   Complete: Σ = f(x) − f(b) wherever the site separates the input from the output (no skip connection around it).
 * - Layer conductance (Dhamdhere, Sundararajan, Yan, "How Important Is a Neuron?", 2018): along the input path
 *   x_α = b + α(x − b), cond_u = ∫₀¹ ∂f/∂h_u(x_α) · dh_u(x_α)/dα dα, as the Riemann–Stieltjes sum
 *   Σ_k ∂f/∂h_u(x_{k+½}) · (h_u(x_{k+1}) − h_u(x_k)) over steps intervals, the gradient taken at each interval's
 *   midpoint (the paper's left point has error O(1/steps) even on smooth stretches; the midpoint O(1/steps²), and the
 *   differences still telescope to h(x) − h(b)). Σ_u cond_u = f(x) − f(b) up to that error, checked.
 *
 * @example
 * const lc = await layerConductance(model, { x }, { site: 'relu1.relu', target: 3, steps: 50 });
 * lc.checks[0]; // completeness: Σ_u cond_u − (f(x) − f(b)) per example
 */
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import { NEURON_ATTRIBUTION, passiveAttribution } from '../taxonomy.js';
import { Attributor, type AttributionOptions } from './attributor.js';
import { resolveBaseline, type Baseline } from './baseline.js';
import { completenessCheck, type Attribution } from './explanation.js';
import { describeBaseline } from './baseline.js';
import { gradientXInput, integratedGradients } from './gradient.js';
import { assemble, examplesPerGroup, floatSite, relabel, sameTarget, siteAlongPath } from './hidden-shared.js';
import type { Quadrature } from './quadrature.js';

type Inputs = Readonly<Record<string, Tensor>>;

export interface LayerOptions extends AttributionOptions {
  /** The hidden site attributed to (alias or value name); required. `wrt` names the input the baseline belongs to. */
  readonly site?: string;
  /** Path points (default 50): quadrature nodes of layer IG, intervals of conductance. */
  readonly steps?: number;
  /** Baseline of the input (default zero). */
  readonly baseline?: Baseline;
  /** Quadrature of layer IG (default 'gauss-legendre'). */
  readonly method?: Quadrature;
  /** Largest relative completeness delta that passes (default 0.05). */
  readonly tolerance?: number;
}

const layerTaxonomy = () => passiveAttribution('local', NEURON_ATTRIBUTION);

function stepsOf(steps: number | undefined, what: string): number {
  const m = steps ?? 50;
  if (!Number.isInteger(m) || m < 1) throw new Error(`${what}: steps must be a positive integer, got ${m}`);
  return m;
}

/** h ⊙ ∂f/∂h at the site. */
export async function layerActivationXGradient(model: Model, inputs: Inputs, options: LayerOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const site = options.site;
  floatSite(model, site, 'layer activation × gradient');
  const r = await gradientXInput(model, inputs, { ...options, wrt: site });
  return relabel(r, 'layer-activation-x-gradient', layerTaxonomy(), { site }, started);
}

/** Integrated gradients of the network above the site, from h(baseline) to h(x). */
export async function layerIntegratedGradients(model: Model, inputs: Inputs, options: LayerOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const hValue = floatSite(model, options.site, 'layer integrated gradients');
  const aIn = await Attributor.create(model, inputs, options);
  const b = resolveBaseline(options.baseline, aIn.x).data;
  const { h, hShape } = await siteAlongPath(aIn, b, [0], hValue, 0, aIn.n);
  const ig = await integratedGradients(model, inputs, {
    ...options,
    wrt: options.site,
    target: sameTarget(aIn),
    baseline: new Tensor('float32', h, [aIn.n, ...hShape]), // h(b) [N, ...h]
  });
  const params = { site: options.site, baseline: describeBaseline(options.baseline), path: 'straight line in the site’s space' };
  return relabel(ig, 'layer-integrated-gradients', layerTaxonomy(), params, started);
}

/** Conductance of every unit of the site along the input path (Dhamdhere et al. 2018). */
export async function layerConductance(model: Model, inputs: Inputs, options: LayerOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const what = 'layer conductance';
  const hValue = floatSite(model, options.site, what);
  const m = stepsOf(options.steps, what);
  const aIn = await Attributor.create(model, inputs, options);
  const aSite = await Attributor.create(model, inputs, { ...options, wrt: options.site, target: sameTarget(aIn) });
  const b = resolveBaseline(options.baseline, aIn.x).data;
  const U = aSite.rowSize;
  // Path points α_j = j / 2m: even j are interval ends, odd j their midpoints.
  const P = 2 * m + 1;
  const alphas = Float64Array.from({ length: P }, (_, j) => j / (2 * m));
  const cond = new Float64Array(aSite.x.size);
  const fb = new Float32Array(aIn.n);
  const group = examplesPerGroup(aIn, P, aIn.rowSize + U);
  for (let i0 = 0; i0 < aIn.n; i0 += group) {
    const i1 = Math.min(aIn.n, i0 + group);
    const { h, hSize, scores } = await siteAlongPath(aIn, b, alphas, hValue, i0, i1);
    if (hSize !== U) throw new Error(`${what}: site '${options.site}' has ${hSize} values per path point but ${U} per example`);
    for (let i = i0; i < i1; i++) fb[i] = scores[(i - i0) * P];
    // Gradient row r: interval k = r % m of example i0 + ⌊r / m⌋, at its midpoint j = 2k + 1.
    await aSite.gradients(
      (i1 - i0) * m,
      (start, end) => {
        const rows = new Float32Array((end - start) * U);
        const owner = new Int32Array(end - start);
        for (let r = start; r < end; r++) {
          const g = Math.floor(r / m);
          owner[r - start] = i0 + g;
          rows.set(h.subarray((g * P + 2 * (r % m) + 1) * U, (g * P + 2 * (r % m) + 2) * U), (r - start) * U);
        }
        return { rows, owner };
      },
      (start, grads, _scores, owner) => {
        for (let q = 0; q < owner.length; q++) {
          const r = start + q;
          const g = Math.floor(r / m);
          const lo = (g * P + 2 * (r % m)) * U;
          const hi = lo + 2 * U;
          const i = owner[q];
          for (let u = 0; u < U; u++) cond[i * U + u] += grads[q * U + u] * (h[hi + u] - h[lo + u]);
        }
      },
    );
  }
  const attributions = new Tensor('float32', Float32Array.from(cond), aSite.x.shape);
  const check = completenessCheck(attributions, aIn.scores0, fb, options.tolerance);
  const separated = aSite.runModel.inputs.length === 1;
  const detail = separated ? check.detail : `${check.detail}; other inputs reach the output around '${options.site}', so the remainder flows past it`;
  return assemble(aSite, {
    method: 'layer-conductance',
    taxonomy: layerTaxonomy(),
    wrt: options.site,
    attributions,
    checks: [{ ...check, detail }],
    params: { site: options.site, steps: m, baseline: describeBaseline(options.baseline), rule: 'midpoint Riemann–Stieltjes' },
    extra: { baselineScores: Array.from(fb) },
    started,
  });
}
