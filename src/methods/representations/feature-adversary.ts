/**
 * Adversaries in the latent space, and the units an attack exploits (Räuker et al. 2023, V: adversarial examples).
 *
 * `featureAdversary` is the simple latent form of Casper et al. 2022 ("Robust feature-level adversaries are
 * interpretability tools"): a delta added to the activation at a site (optionally on some units / a spatial patch only)
 * and grown along the normalised cross-entropy gradient at the perturbed point until the class flips, then shrunk by
 * bisection to the smallest multiple that still flips. It reports where the delta's norm sits (per unit) and compares
 * its norm with the norm random directions need to flip the same examples.
 *
 * `attackUnits` takes clean and adversarial inputs (e.g. from `pgd`) and ranks the units of a site by how much they
 * change and by their attribution to the change of the logit margin (Δactivation × gradient at the adversarial point);
 * patching the top-m units from the clean run must restore the clean prediction more often than patching m random units.
 *
 * @example
 * const f = await featureAdversary(model, x, 'c2.relu', { steps: 40 });
 * const u = await attackUnits(model, x, (await pgd(model, x, { eps: 0.1, alpha: 0.02, steps: 10 })).adversarial, 'c2.relu', { m: 3 });
 */
import { mulberry32 } from '../../data/datasets/random.js';
import { defaultUnitAxis } from '../../model/interventions.js';
import { Model } from '../../model/model.js';
import { cutEdge } from '../../onnx/rewrite.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { gatherRows } from '../attribution/attributor.js';
import { argmaxRows, crossEntropySeed } from '../../util/softmax.js';
import { attackSetup, gaussian, l2 } from './adversarial.js';

export interface FeatureAdversaryOptions {
  /** Untargeted: the labels to move away from (default: the clean predictions). Targeted: the class to reach. */
  readonly labels?: ArrayLike<number>;
  readonly target?: number;
  /** Largest L2 norm of the delta per example (default: none; the search stops at the flip). */
  readonly budget?: number;
  /** Gradient steps (default 50), each of `stepSize` × ‖clean activation‖ (default 0.05). */
  readonly steps?: number;
  readonly stepSize?: number;
  /** Only these units (along the site's unit axis) are perturbed. */
  readonly units?: readonly number[];
  /** Only this spatial patch [h0, h1) × [w0, w1) of a [N, C, H, W] site is perturbed. */
  readonly region?: readonly [number, number, number, number];
  readonly input?: string;
  readonly output?: string;
  /** Seed of the random directions compared with. */
  readonly seed?: number;
}

export interface FeatureAdversaryResult {
  readonly site: string;
  /** The delta added at the site, [N, ...site shape]. */
  readonly delta: Tensor<'float32'>;
  /** ‖δ‖₂ per example, and relative to ‖clean activation‖₂. */
  readonly norms: Float64Array;
  readonly relativeNorms: Float64Array;
  readonly labels: Int32Array;
  readonly predictions: Int32Array;
  readonly flipped: readonly boolean[];
  readonly flipRate: number;
  /** Share of Σ‖δ‖² per unit along the unit axis, and the units by share. */
  readonly unitShare: Float64Array;
  readonly topUnits: readonly number[];
  /** Fraction of flipped examples a random direction (same units) of the delta's norm flips. */
  readonly randomFlipRate: number;
  /** Median over flipped examples of (norm a random direction needs to flip) / ‖δ‖ (Infinity beyond 16×). */
  readonly randomNormRatio: number;
  readonly checks: Check[];
}

const cuts = new WeakMap<Model, Map<string, Promise<Model>>>();

/** The model with the site's value turned into an input; cached per model and value. */
function cutAt(model: Model, value: string): Promise<Model> {
  let byValue = cuts.get(model);
  if (!byValue) cuts.set(model, (byValue = new Map()));
  let m = byValue.get(value);
  if (!m) {
    m = Model.load(cutEdge(model.graph, value, model.site(value).dtype).encode(), { runtime: model.runtime, probe: false });
    byValue.set(value, m);
  }
  return m;
}

/** 1 where the delta may act, over one example's site row [..site shape]. */
function unitMask(rowShape: readonly number[], axis: number, units: readonly number[] | undefined, region: FeatureAdversaryOptions['region'], site: string): Float32Array {
  const size = rowShape.reduce((a, b) => a * b, 1);
  const mask = new Float32Array(size).fill(1);
  const strides = rowShape.map((_, i) => rowShape.slice(i + 1).reduce((a, b) => a * b, 1));
  const ax = axis - 1; // axis in the row (without the batch axis)
  if (units) {
    const count = rowShape[ax];
    for (const u of units) if (!Number.isInteger(u) || u < 0 || u >= count) throw new Error(`feature-adversary: unit ${u} is out of range for '${site}' (${count} units)`);
    const keep = new Set(units);
    for (let j = 0; j < size; j++) if (!keep.has(Math.floor(j / strides[ax]) % count)) mask[j] = 0;
  }
  if (region) {
    if (rowShape.length !== 3) throw new Error(`feature-adversary: a region needs a [N, C, H, W] site; '${site}' is [N, ${rowShape.join(', ')}]`);
    const [h0, h1, w0, w1] = region;
    const [, H, W] = rowShape;
    if (!(0 <= h0 && h0 < h1 && h1 <= H && 0 <= w0 && w0 < w1 && w1 <= W)) throw new Error(`feature-adversary: region [${region.join(', ')}] is not inside ${H}×${W}`);
    for (let j = 0; j < size; j++) {
      const h = Math.floor(j / W) % H;
      const w = j % W;
      if (h < h0 || h >= h1 || w < w0 || w >= w1) mask[j] = 0;
    }
  }
  return mask;
}

/** Feature-level adversary at `site`: the smallest delta along the gradient path that flips each example's class. */
export async function featureAdversary(model: Model, x: Tensor, site: string, options: FeatureAdversaryOptions = {}): Promise<FeatureAdversaryResult> {
  const what = 'feature-adversary';
  const steps = options.steps ?? 50;
  const stepSize = options.stepSize ?? 0.05;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`${what}: steps must be an integer ≥ 1, got ${steps}`);
  if (!(stepSize > 0) || !Number.isFinite(stepSize)) throw new Error(`${what}: stepSize must be a finite number > 0, got ${stepSize}`);
  if (options.budget !== undefined && !(options.budget > 0 && Number.isFinite(options.budget))) throw new Error(`${what}: budget must be a finite number > 0, got ${options.budget}`);
  const s = attackSetup(model, x, { ...options, range: null }, what);
  const siteValue = model.site(site).value; // unknown names fail here, with the close ones
  const clean = await model.run({ [s.input]: x }, { capture: [site] });
  const logits0 = clean.outputs[s.output];
  const classes = logits0.size / s.n;
  const a0 = clean.captures[site] as Tensor<'float32'>;
  if (a0.dtype !== 'float32' || a0.shape[0] !== s.n) throw new Error(`${what}: '${site}' must be a float32 site with the batch axis, got ${a0.dtype} [${a0.shape.join(', ')}]`);
  const row = a0.size / s.n;
  const axis = defaultUnitAxis(a0.rank);
  const mask = unitMask(a0.shape.slice(1), axis, options.units, options.region, site);
  const cleanPred = argmaxRows(logits0, classes);
  const target = options.target;
  if (target !== undefined && !(Number.isInteger(target) && target >= 0 && target < classes)) throw new Error(`${what}: target ${target} is not a class in [0, ${classes})`);
  const labels = target !== undefined ? new Int32Array(s.n).fill(target) : options.labels ? Int32Array.from(options.labels) : cleanPred;
  if (labels.length !== s.n) throw new Error(`${what}: labels has ${labels.length} entries for ${s.n} examples`);
  const isFlip = (p: number, i: number) => (target !== undefined ? p === target : p !== labels[i]);

  const cut = await cutAt(model, siteValue);
  const others = cut.inputs.some((i) => i.name === s.input) ? { [s.input]: x } : {};
  const at = (delta: Float32Array, c = 1) => {
    const v = new Float32Array(a0.data as Float32Array);
    for (let j = 0; j < v.length; j++) v[j] += c * delta[j];
    return { ...others, [siteValue]: Tensor.float32(v, a0.shape) };
  };
  const predict = async (delta: Float32Array, c = 1) => argmaxRows((await cut.run(at(delta, c))).outputs[s.output], classes);

  const delta = new Float32Array(a0.size);
  const cleanNorm = Float64Array.from({ length: s.n }, (_, i) => l2((a0.data as Float32Array).subarray(i * row, (i + 1) * row)));
  const sign = target !== undefined ? -1 : 1;
  for (let t = 0; t < steps; t++) {
    const feeds = at(delta);
    const logits = (await cut.run(feeds)).outputs[s.output];
    const pred = argmaxRows(logits, classes);
    if (pred.every(isFlip)) break;
    const g = (await cut.grad(feeds, { of: s.output, wrt: [siteValue], seed: crossEntropySeed(logits, labels) })).grads[siteValue].data as Float32Array;
    for (let i = 0; i < s.n; i++) {
      if (isFlip(pred[i], i)) continue; // frozen at its first flip
      const gi = g.subarray(i * row, (i + 1) * row).map((v, j) => v * mask[j]);
      const f = (sign * stepSize * cleanNorm[i]) / Math.max(1e-12, l2(gi));
      const di = delta.subarray(i * row, (i + 1) * row);
      for (let j = 0; j < row; j++) di[j] += f * gi[j];
      const n = l2(di);
      if (options.budget !== undefined && n > options.budget) for (let j = 0; j < row; j++) di[j] *= options.budget / n;
    }
  }
  // Shrink each flipping delta to the smallest multiple c ∈ (0, 1] that still flips (bisection, 12 halvings).
  let flippedNow = Array.from(await predict(delta), isFlip);
  const lo = new Float64Array(s.n);
  const hi = new Float64Array(s.n).fill(1);
  for (let k = 0; k < 12; k++) {
    const mid = Float32Array.from({ length: a0.size }, (_, j) => delta[j] * ((lo[Math.floor(j / row)] + hi[Math.floor(j / row)]) / 2));
    const p = await predict(mid);
    for (let i = 0; i < s.n; i++) {
      if (!flippedNow[i]) continue;
      if (isFlip(p[i], i)) hi[i] = (lo[i] + hi[i]) / 2;
      else lo[i] = (lo[i] + hi[i]) / 2;
    }
  }
  for (let j = 0; j < a0.size; j++) if (flippedNow[Math.floor(j / row)]) delta[j] *= hi[Math.floor(j / row)];
  const deltaT = Tensor.float32(delta, a0.shape);
  // The delta applied through the ordinary intervention on the whole model must give the same predictions.
  const viaAdd = argmaxRows((await model.run({ [s.input]: x }, { interventions: [{ kind: 'add', site, value: deltaT }] })).outputs[s.output], classes);
  const viaCut = await predict(delta);
  flippedNow = Array.from(viaAdd, isFlip);
  const agree = viaAdd.filter((p, i) => p === viaCut[i]).length / s.n;
  const norms = Float64Array.from({ length: s.n }, (_, i) => l2(delta.subarray(i * row, (i + 1) * row)));
  const relativeNorms = norms.map((v, i) => v / Math.max(1e-12, cleanNorm[i]));

  // Norm share per unit along the unit axis.
  const count = a0.shape[axis];
  const inner = a0.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const unitShare = new Float64Array(count);
  for (let j = 0; j < a0.size; j++) unitShare[Math.floor(j / inner) % count] += delta[j] ** 2;
  const total = unitShare.reduce((a, b) => a + b, 0) || 1;
  for (let u = 0; u < count; u++) unitShare[u] /= total;
  const topUnits = Array.from(unitShare.keys()).sort((a, b) => unitShare[b] - unitShare[a]);

  // Random directions on the same units, scaled to f × ‖δ‖ for f = 1, 2, 4, 8, 16: the first f that flips.
  const rand = mulberry32(options.seed ?? 0);
  const dir = new Float32Array(a0.size);
  for (let i = 0; i < s.n; i++) {
    const di = dir.subarray(i * row, (i + 1) * row);
    for (let j = 0; j < row; j++) di[j] = gaussian(rand) * mask[j];
    const f = norms[i] / Math.max(1e-12, l2(di));
    for (let j = 0; j < row; j++) di[j] *= f;
  }
  const needed = new Float64Array(s.n).fill(Infinity);
  for (const f of [16, 8, 4, 2, 1]) {
    const p = await predict(dir, f);
    for (let i = 0; i < s.n; i++) if (isFlip(p[i], i)) needed[i] = f;
  }
  const flippedIx = flippedNow.flatMap((b, i) => (b ? [i] : []));
  const nf = Math.max(1, flippedIx.length);
  const flipRate = flippedIx.length / s.n;
  const randomFlipRate = flippedIx.filter((i) => needed[i] === 1).length / nf;
  const ratios = flippedIx.map((i) => needed[i]).sort((a, b) => a - b);
  const randomNormRatio = ratios.length ? ratios[Math.floor((ratios.length - 1) / 2)] : NaN;
  const checks: Check[] = [
    { name: 'flip-rate', value: flipRate, detail: `${flippedIx.length} of ${s.n} examples ${target !== undefined ? `reach class ${target}` : 'change class'} with the delta at '${site}'${options.budget ? ` (‖δ‖₂ ≤ ${options.budget})` : ''}` },
    { name: 'intervention-agrees', value: agree, passed: agree === 1, detail: `predictions with the delta as an 'add' intervention vs on the model cut at '${site}': ${(100 * agree).toFixed(1)}% agree` },
    {
      name: 'beats-random-directions',
      value: randomFlipRate,
      passed: flippedIx.length > 0 && randomFlipRate <= 0.5,
      detail: `random directions of ‖δ‖ flip ${(100 * randomFlipRate).toFixed(1)}% of the flipped examples; the median random direction needs ${randomNormRatio}× the norm`,
    },
  ];
  return { site, delta: deltaT, norms, relativeNorms, labels, predictions: viaAdd, flipped: flippedNow, flipRate, unitShare, topUnits, randomFlipRate, randomNormRatio, checks };
}

export interface AttackUnitsOptions {
  /** Units patched in the check (default 3). */
  readonly m?: number;
  /** 'patch': the units take their clean-run values (default); 'zero': the units are zeroed. */
  readonly mode?: 'patch' | 'zero';
  /** Random m-unit sets compared with (default 20), drawn with `seed`. */
  readonly draws?: number;
  readonly seed?: number;
  readonly input?: string;
  readonly output?: string;
}

export interface AttackUnitsResult {
  readonly site: string;
  /** Examples whose prediction the attack changed (the rows analysed). */
  readonly examples: readonly number[];
  /** Per unit: mean over those examples of ‖a_adv − a_clean‖₂ over the unit's positions; units ranked by it. */
  readonly change: Float64Array;
  readonly byChange: readonly number[];
  /**
   * Per unit: Σ over examples and positions of Δa × ∂(logit[clean] − logit[adv])/∂a at the adversarial point; negative
   * values lower the clean class's margin. Units ranked most negative first: the units the attack exploits.
   */
  readonly attribution: Float64Array;
  readonly exploited: readonly number[];
  /** Fraction of the examples whose clean prediction returns when the top-m exploited units are restored, and for random m-unit sets (mean). */
  readonly restoredTop: number;
  readonly restoredRandom: number;
  readonly checks: Check[];
}

/** Which units of `site` an attack exploits: change and Δa × gradient rankings, tested by patching the top m. */
export async function attackUnits(model: Model, clean: Tensor, adversarial: Tensor, site: string, options: AttackUnitsOptions = {}): Promise<AttackUnitsResult> {
  const what = 'attack-units';
  const s = attackSetup(model, clean, { ...options, range: null }, what);
  attackSetup(model, adversarial, { ...options, range: null }, what);
  if (adversarial.shape.join() !== clean.shape.join()) throw new Error(`${what}: adversarial [${adversarial.shape.join(', ')}] and clean [${clean.shape.join(', ')}] inputs differ in shape`);
  const m = options.m ?? 3;
  const draws = options.draws ?? 20;
  if (!Number.isInteger(m) || m < 1) throw new Error(`${what}: m must be an integer ≥ 1, got ${m}`);
  if (!Number.isInteger(draws) || draws < 1) throw new Error(`${what}: draws must be an integer ≥ 1, got ${draws}`);
  model.site(site);
  const runC = await model.run({ [s.input]: clean }, { capture: [site] });
  const runA = await model.run({ [s.input]: adversarial }, { capture: [site] });
  const classes = runC.outputs[s.output].size / s.n;
  const predC = argmaxRows(runC.outputs[s.output], classes);
  const predA = argmaxRows(runA.outputs[s.output], classes);
  const examples = Array.from(predA.keys()).filter((i) => predA[i] !== predC[i]);
  if (examples.length === 0) throw new Error(`${what}: the adversarial inputs change no prediction; nothing to explain`);
  const owner = Int32Array.from(examples);
  const xc = gatherRows(clean, owner);
  const xa = gatherRows(adversarial, owner);
  const ac = gatherRows(runC.captures[site], owner).data as Float32Array;
  const aa = gatherRows(runA.captures[site], owner).data as Float32Array;
  const shape = runC.captures[site].shape;
  const axis = defaultUnitAxis(shape.length);
  const count = shape[axis];
  if (m >= count) throw new Error(`${what}: m = ${m} must be below the ${count} units of '${site}'`);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const unitOf = (j: number) => Math.floor(j / inner) % count;

  // Seed of logit[clean] − logit[adv] at the adversarial point; its gradient with respect to the site.
  const k = examples.length;
  const seed = new Float32Array(k * classes);
  examples.forEach((e, r) => {
    seed[r * classes + predC[e]] = 1;
    seed[r * classes + predA[e]] = -1;
  });
  const g = (await model.grad({ [s.input]: xa }, { of: s.output, wrt: [site], seed: Tensor.float32(seed, [k, classes]) })).grads[site].data as Float32Array;
  const change = new Float64Array(count);
  const attribution = new Float64Array(count);
  const perRowSq = new Float64Array(count);
  const row = ac.length / k;
  for (let r = 0; r < k; r++) {
    perRowSq.fill(0);
    for (let j = r * row; j < (r + 1) * row; j++) {
      const d = aa[j] - ac[j];
      perRowSq[unitOf(j)] += d * d;
      attribution[unitOf(j)] += d * g[j];
    }
    for (let u = 0; u < count; u++) change[u] += Math.sqrt(perRowSq[u]) / k;
  }
  const byChange = Array.from(change.keys()).sort((a, b) => change[b] - change[a]);
  const exploited = Array.from(attribution.keys()).sort((a, b) => attribution[a] - attribution[b]);
  const marginOf = (logits: Float32Array, r: number, e: number) => logits[r * classes + predC[e]] - logits[r * classes + predA[e]];
  const lc = runC.outputs[s.output].data as Float32Array;
  const la = runA.outputs[s.output].data as Float32Array;
  const dMargin = examples.reduce((t, e) => t + marginOf(la, e, e) - marginOf(lc, e, e), 0);
  const sumAttr = attribution.reduce((a, b) => a + b, 0);

  const mode = options.mode ?? 'patch';
  const restored = async (units: readonly number[]) => {
    const iv = mode === 'patch' ? { kind: 'patch' as const, site, from: { [s.input]: xc }, units } : { kind: 'zero' as const, site, units };
    const p = argmaxRows((await model.run({ [s.input]: xa }, { interventions: [iv] })).outputs[s.output], classes);
    return examples.filter((e, r) => p[r] === predC[e]).length / k;
  };
  const restoredTop = await restored(exploited.slice(0, m));
  const rand = mulberry32(options.seed ?? 0);
  let restoredRandom = 0;
  for (let d = 0; d < draws; d++) {
    const pool = Array.from({ length: count }, (_, u) => u);
    const pick = Array.from({ length: m }, () => pool.splice(Math.floor(rand() * pool.length), 1)[0]);
    restoredRandom += (await restored(pick)) / draws;
  }
  const checks: Check[] = [
    {
      name: 'first-order-margin',
      value: sumAttr,
      detail: `Σ Δa × gradient over units ${sumAttr.toFixed(3)} vs the actual change of logit[clean] − logit[adv] ${dMargin.toFixed(3)} over ${k} examples (first order; the gradient is taken at the adversarial point)`,
    },
    {
      name: 'top-units-restore',
      value: restoredTop,
      passed: restoredTop > restoredRandom,
      detail: `${mode === 'patch' ? 'patching from the clean run' : 'zeroing'} the top ${m} exploited units [${exploited.slice(0, m).join(', ')}] of '${site}' restores ${(100 * restoredTop).toFixed(1)}% of ${k} flipped predictions; ${m} random units ${(100 * restoredRandom).toFixed(1)}% (mean of ${draws})`,
    },
  ];
  return { site, examples, change, byChange, attribution, exploited, restoredTop, restoredRandom, checks };
}
