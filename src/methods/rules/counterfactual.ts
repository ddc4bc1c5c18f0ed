/**
 * Counterfactual explanations (Wachter, Mittelstadt, Russell, "Counterfactual Explanations without Opening the Black
 * Box", Harvard JOLT 2017): the smallest change x' of x that the model gives another class,
 *
 *   minimise  λ · loss(f(x'), target) + Σ_j |x'_j − x_j| / MAD_j
 *
 * with the distance weighted by each feature's median absolute deviation on the data, as Wachter et al. do, and λ
 * raised until the class flips (here a geometric grid of λ, all run as rows of one batch). The loss is a hinge on the
 * logits, max(0, κ − margin), whose minimiser with λ large enough lies on the boundary pushed out by κ; the L1 term is
 * taken by proximal steps (soft thresholding), so unchanged features stay exactly unchanged. Each step is one
 * model.grad call over K·C rows (one-hot seeds) giving the logits and their Jacobian at all K points. Optional plausibility
 * terms (Van Looveren & Klaise, "Interpretable Counterfactual Explanations Guided by Prototypes", 2019):
 * θ·‖(x' − p)/MAD‖² toward the nearest data example p of the target class, and γ·‖(x' − AE(x'))/MAD‖², the
 * reconstruction error of an autoencoder the user brings. Immutable features and feature ranges are constraints.
 *
 * @example
 * const cf = await counterfactual(model, iris.get(60).x.data, { data: iris, target: 2, ranges: 'data' });
 * cf.changes; // [{ name: 'petal width (cm)', from: 1, to: 1.74 }, ...]; cf.distance, cf.prediction, cf.checks
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import type { Model } from '../../model/model.js';
import { Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { passive, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { percentile, referenceOf, type Reference } from './perturb.js';

export interface CounterfactualOptions {
  /** The data that sets the feature scales (MAD), the nearest examples and the plausibility reference. */
  readonly data: Dataset<'float32'>;
  /** The class to reach (default: any class other than x's). */
  readonly target?: number;
  /** Weights λ of the loss, tried together as rows of one batch (default 2^-3 … 2^10). */
  readonly lambdas?: readonly number[];
  /** Proximal gradient steps (default 300). */
  readonly steps?: number;
  /** First step length in MAD units, decaying geometrically to 1/250 of it (default 0.5). */
  readonly stepSize?: number;
  /** Logit margin κ the target must win by (default 0.1). */
  readonly margin?: number;
  /** Features (flat input positions) that must not change. */
  readonly immutable?: readonly number[];
  /** Per feature [min, max] (null: unbounded), or 'data': the data's own range. */
  readonly ranges?: readonly (readonly [number, number] | null)[] | 'data';
  /** Weight θ of the nearest-example (prototype) term (default 0: off). */
  readonly prototype?: number;
  /** An autoencoder on the model's input space and the weight γ of its reconstruction term. */
  readonly autoencoder?: { readonly model: Model; readonly weight: number };
  /** Data rows used as reference at most (a seeded subset beyond; default 2000). */
  readonly maxReference?: number;
  readonly featureNames?: readonly string[];
  readonly classNames?: readonly string[];
}

export interface FeatureChange {
  readonly feature: number;
  readonly name: string;
  readonly from: number;
  readonly to: number;
}

export interface CounterfactualExplanation {
  readonly method: 'counterfactual';
  readonly taxonomy: Taxonomy;
  readonly x: Float32Array;
  readonly counterfactual: Float32Array;
  /** Whether some λ flipped the class; if none did, the closest attempt is reported. */
  readonly found: boolean;
  readonly original: { readonly class: number; readonly name: string; readonly probability: number };
  readonly prediction: { readonly class: number; readonly name: string; readonly probability: number };
  /** The class asked for, or null for "any other class". */
  readonly target: number | null;
  /** The features that changed, in raw units. */
  readonly changes: readonly FeatureChange[];
  /** Σ |x' − x| / MAD. */
  readonly distance: number;
  /** The λ whose solution is reported, and the smallest λ that flipped the class. */
  readonly lambda: number;
  readonly smallestFlippingLambda: number | null;
  readonly mad: Float64Array;
  readonly modelCalls: number;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

const softmax = (z: ArrayLike<number>, at: number, c: number, k: number): number => {
  let m = -Infinity;
  for (let j = 0; j < c; j++) m = Math.max(m, z[at + j]);
  let s = 0;
  for (let j = 0; j < c; j++) s += Math.exp(z[at + j] - m);
  return Math.exp(z[at + k] - m) / s;
};

/** A counterfactual of x (flat, one example of `data`'s shape) by Wachter et al.'s objective. */
export async function counterfactual(model: Model, x: ArrayLike<number>, options: CounterfactualOptions): Promise<CounterfactualExplanation> {
  const start = performance.now();
  const o = {
    lambdas: options.lambdas ?? Array.from({ length: 14 }, (_, i) => 2 ** (i - 3)),
    steps: options.steps ?? 300,
    stepSize: options.stepSize ?? 0.5,
    margin: options.margin ?? 0.1,
    prototype: options.prototype ?? 0,
    aeWeight: options.autoencoder?.weight ?? 0,
    maxReference: options.maxReference ?? 2000,
  };
  if (o.lambdas.length === 0 || o.lambdas.some((l) => !(l > 0 && Number.isFinite(l)))) throw new Error(`counterfactual: lambdas must be positive numbers, got [${o.lambdas.join(', ')}]`);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`counterfactual: steps must be a positive integer, got ${o.steps}`);
  for (const k of ['stepSize', 'margin', 'prototype', 'aeWeight'] as const) {
    if (!(o[k] >= 0 && Number.isFinite(o[k])) || (k === 'stepSize' && o[k] === 0)) throw new Error(`counterfactual: ${k} must be a ${k === 'stepSize' ? 'positive' : 'non-negative'} number, got ${o[k]}`);
  }
  const ref: Reference = await referenceOf(model, options.data, o.maxReference);
  const d = ref.features;
  if (x.length !== d) throw new Error(`counterfactual: x has ${x.length} values, ${options.data.name} has ${d} per example`);
  const x0 = Float32Array.from(x);
  const bad = x0.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`counterfactual: x[${bad}] is ${x0[bad]}`);
  const names = options.featureNames ?? options.data.featureNames ?? Array.from({ length: d }, (_, i) => `x${i}`);
  const input = model.inputs[0].name;
  const output = model.outputs[0].name;
  const shape = options.data.inputShape;
  let modelCalls = 0;
  const logitsOf = async (flat: Float32Array, rows: number) => {
    modelCalls++;
    const z = (await model.run({ [input]: new Tensor('float32', flat, [rows, ...shape]) })).outputs[output];
    if (z.shape.length !== 2 || z.shape[0] !== rows) throw new Error(`counterfactual: the model's output must be logits [N, classes], got [${z.shape.join(', ')}]`);
    return z.data as Float32Array;
  };
  /** Logits [K, C] and their Jacobian [K, C, D] at K points, in one gradient call over K·C rows with one-hot seeds. */
  const jacobian = async (points: Float32Array, rows: number) => {
    const cc = c;
    const rep = new Float32Array(rows * cc * d); // [K·C, D]
    const seed = new Float32Array(rows * cc * cc); // [K·C, C]
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cc; j++) {
        rep.set(points.subarray(r * d, (r + 1) * d), (r * cc + j) * d);
        seed[(r * cc + j) * cc + j] = 1;
      }
    }
    const out = await model.grad({ [input]: new Tensor('float32', rep, [rows * cc, ...shape]) }, { of: output, wrt: [input], seed: new Tensor('float32', seed, [rows * cc, cc]) });
    modelCalls++;
    const all = out.outputs[output].data as Float32Array;
    const z = Float32Array.from({ length: rows * cc }, (_, i) => all[(Math.floor(i / cc) * cc) * cc + (i % cc)]);
    return { z, jac: out.grads[input].data as Float32Array };
  };
  const z0 = await logitsOf(x0, 1);
  const c = z0.length;
  const argmax = (z: Float32Array, at: number) => {
    let b = 0;
    for (let j = 1; j < c; j++) if (z[at + j] > z[at + b]) b = j;
    return b;
  };
  const c0 = argmax(z0, 0);
  const target = options.target ?? null;
  if (target !== null && !(Number.isInteger(target) && target >= 0 && target < c)) throw new Error(`counterfactual: target must be a class in 0..${c - 1}, got ${target}`);
  if (target === c0) throw new Error(`counterfactual: x is already predicted as class ${target}; ask for another target`);
  const className = (k: number) => options.classNames?.[k] ?? options.data.classNames?.[k] ?? String(k);

  const mad = ref.mad;
  const fixed = new Uint8Array(d);
  for (const j of options.immutable ?? []) {
    if (!(Number.isInteger(j) && j >= 0 && j < d)) throw new Error(`counterfactual: immutable feature ${j} is not in 0..${d - 1}`);
    fixed[j] = 1;
  }
  // The box u = (x' − x)/MAD lives in; a range that excludes x is widened to include it.
  const uLo = new Float64Array(d).fill(-Infinity);
  const uHi = new Float64Array(d).fill(Infinity);
  const ranges = options.ranges === 'data' ? Array.from({ length: d }, (_, j) => [ref.min[j], ref.max[j]] as const) : options.ranges;
  if (ranges && ranges.length !== d) throw new Error(`counterfactual: ${ranges.length} ranges for ${d} features`);
  ranges?.forEach((r, j) => {
    if (!r) return;
    if (!(r[0] <= r[1])) throw new Error(`counterfactual: range of feature ${j} (${names[j]}) is [${r[0]}, ${r[1]}]`);
    uLo[j] = Math.min(0, (r[0] - x0[j]) / mad[j]);
    uHi[j] = Math.max(0, (r[1] - x0[j]) / mad[j]);
  });

  const wanted = (k: number) => (target === null ? k !== c0 : k === target);
  const nearest = ref.nearest(x0, wanted);
  const proto = o.prototype > 0 ? nearest : undefined;
  if (o.prototype > 0 && !proto) throw new Error(`counterfactual: no data example is predicted as ${target === null ? 'another class' : className(target)}; the prototype term needs one`);
  // With "any other class" and a prototype, aim at the prototype's class (Van Looveren & Klaise).
  const aim = target ?? (proto ? ref.predicted[proto.row] : null);
  const ae = options.autoencoder && o.aeWeight > 0 ? options.autoencoder.model : undefined;

  /** How far the aimed class (or, aiming at none, the best other class) leads its rival; the hinge pushes it to κ. */
  const marginAt = (z: Float32Array, r: number) => {
    let other = -1;
    for (let j = 0; j < c; j++) {
      if (aim === null ? j === c0 : j === aim) continue;
      if (other < 0 || z[r * c + j] > z[r * c + other]) other = j;
    }
    const lead = aim === null ? other : aim;
    const rival = aim === null ? c0 : other;
    return { top: argmax(z, r * c), lead, rival, margin: z[r * c + lead] - z[r * c + rival] };
  };

  const k = o.lambdas.length;
  const u = new Float64Array(k * d); // [K, D]
  const xs = new Float32Array(k * d);
  const best = { score: Infinity, distance: Infinity, row: -1, atMargin: false, x: new Float32Array(d) };
  let smallestFlip: number | null = null;
  const decay = Math.pow(1 / 250, 1 / Math.max(1, o.steps - 1));
  for (let t = 0; t <= o.steps; t++) {
    for (let i = 0; i < k * d; i++) xs[i] = x0[i % d] + mad[i % d] * u[i];
    const { z, jac } = await jacobian(xs, k);
    const g = new Float64Array(k * d);
    const aeTerm = ae ? await reconstruction(ae, xs, k, shape, mad, 2 * o.aeWeight) : undefined;
    for (let r = 0; r < k; r++) {
      const { top, lead, rival, margin } = marginAt(z, r);
      let dist = 0;
      for (let j = 0; j < d; j++) dist += Math.abs(xs[r * d + j] - x0[j]) / mad[j];
      if (wanted(top) && margin > 0) {
        smallestFlip = smallestFlip === null ? o.lambdas[r] : Math.min(smallestFlip, o.lambdas[r]);
        const atMargin = margin >= o.margin;
        let score = dist + (aeTerm ? o.aeWeight * aeTerm.error[r] : 0);
        if (proto) for (let j = 0; j < d; j++) score += o.prototype * ((xs[r * d + j] - proto.x[j]) / mad[j]) ** 2;
        if ((atMargin && !best.atMargin) || (atMargin === best.atMargin && score < best.score)) {
          Object.assign(best, { score, distance: dist, row: r, atMargin });
          best.x.set(xs.subarray(r * d, (r + 1) * d));
        }
      }
      // The hinge's gradient: λ (∇z_rival − ∇z_lead) while the margin is short of κ.
      if (margin < o.margin) for (let j = 0; j < d; j++) g[r * d + j] = o.lambdas[r] * (jac[(r * c + rival) * d + j] - jac[(r * c + lead) * d + j]);
    }
    if (t === o.steps) break;
    if (aeTerm) for (let i = 0; i < k * d; i++) g[i] += aeTerm.grad[i];
    if (proto) for (let i = 0; i < k * d; i++) g[i] += (2 * o.prototype * (xs[i] - proto.x[i % d])) / mad[i % d] ** 2;
    // Proximal step on u: gradient in MAD units, step normalised by the largest entry, soft threshold, box.
    const eta = o.stepSize * decay ** t;
    for (let r = 0; r < k; r++) {
      let norm = 1;
      for (let j = 0; j < d; j++) norm = Math.max(norm, Math.abs(mad[j] * g[r * d + j]));
      const s = eta / norm;
      for (let j = 0; j < d; j++) {
        const i = r * d + j;
        if (fixed[j]) continue;
        const v = u[i] - s * mad[j] * g[i];
        const shrunk = Math.sign(v) * Math.max(0, Math.abs(v) - s);
        u[i] = Math.min(uHi[j], Math.max(uLo[j], shrunk));
      }
    }
  }

  const found = best.row >= 0;
  // The optimiser dithers around zero on features it need not move: reset the m smallest changes, for the largest m
  // whose point still gives the wanted class by at least κ/2 (all m in one batched call).
  const moved = Array.from({ length: d }, (_, j) => j).filter((j) => best.x[j] !== x0[j]).sort((a, b) => Math.abs(best.x[a] - x0[a]) / mad[a] - Math.abs(best.x[b] - x0[b]) / mad[b]);
  const tries = found ? moved.length : 1; // m = 0 … moved − 1
  const pruned = new Float32Array(tries * d);
  for (let m = 0; m < tries; m++) {
    pruned.set(best.x, m * d);
    for (const j of moved.slice(0, m)) pruned[m * d + j] = x0[j];
  }
  const zp = await logitsOf(pruned, tries);
  let keep = 0;
  for (let m = tries - 1; m > 0; m--) {
    const { top, margin } = marginAt(zp, m);
    if (wanted(top) && margin >= o.margin / 2) {
      keep = m;
      break;
    }
  }
  const xcf = found ? pruned.slice(keep * d, (keep + 1) * d) : x0;
  const zcf = found ? zp.slice(keep * c, (keep + 1) * c) : z0;
  const cls = argmax(zcf, 0);
  let distance = 0;
  const changes: FeatureChange[] = [];
  for (let j = 0; j < d; j++) {
    distance += Math.abs(xcf[j] - x0[j]) / mad[j];
    if (xcf[j] !== x0[j]) changes.push({ feature: j, name: names[j], from: x0[j], to: xcf[j] });
  }
  const checks: Check[] = [
    {
      name: 'class flips on a re-run',
      value: cls,
      passed: wanted(cls),
      detail: `the model run again on x' predicts ${className(cls)} (x: ${className(c0)}; wanted ${target === null ? 'any other class' : className(target)})`,
    },
  ];
  if (nearest) {
    checks.push({
      name: 'closer than the nearest example of the target class',
      value: distance,
      passed: distance < nearest.distance,
      detail: `MAD-weighted L1 distance ${distance.toFixed(4)} vs ${nearest.distance.toFixed(4)} to data row ${nearest.row}, the nearest one the model gives ${className(ref.predicted[nearest.row])}`,
    });
  }
  checks.push(ref.outlierCheck(xcf, x0));
  if (options.autoencoder) checks.push(await autoencoderCheck(options.autoencoder.model, ref, xcf, x0, shape, mad));
  return {
    method: 'counterfactual',
    taxonomy: COUNTERFACTUAL_METHODS.counterfactual.info.taxonomy,
    x: x0,
    counterfactual: xcf,
    found,
    original: { class: c0, name: className(c0), probability: softmax(z0, 0, c, c0) },
    prediction: { class: cls, name: className(cls), probability: softmax(zcf, 0, c, cls) },
    target,
    changes,
    distance,
    lambda: found ? o.lambdas[best.row] : NaN,
    smallestFlippingLambda: smallestFlip,
    mad,
    modelCalls,
    checks,
    params: { ...o, target, immutable: options.immutable ?? [], ranges: options.ranges === 'data' ? 'data' : ranges ? 'given' : 'none', autoencoder: Boolean(options.autoencoder) },
    ms: performance.now() - start,
  };
}

/**
 * γ‖(z − AE(z))/MAD‖² per row and its gradient w.r.t. z: s − J_AEᵀ s with s = 2γ(z − AE(z))/MAD² (`scale` = 2γ).
 * Two calls: the reconstruction, then the vector-Jacobian product seeded with s.
 */
export async function reconstruction(ae: Model, flat: Float32Array, rows: number, shape: readonly number[], mad: Float64Array, scale: number): Promise<{ error: Float64Array; grad: Float64Array }> {
  const input = ae.inputs[0].name;
  const output = ae.outputs[0].name;
  const x = new Tensor('float32', flat, [rows, ...shape]);
  const rec = (await ae.run({ [input]: x })).outputs[output];
  if (rec.size !== flat.length) throw new Error(`counterfactual: the autoencoder maps [${x.shape.join(', ')}] to [${rec.shape.join(', ')}]; it must keep the input's shape`);
  const d = mad.length;
  const error = new Float64Array(rows);
  const s = new Float32Array(flat.length);
  for (let i = 0; i < flat.length; i++) {
    const e = (flat[i] - (rec.data as Float32Array)[i]) / mad[i % d];
    error[Math.floor(i / d)] += e * e;
    s[i] = (scale * e) / mad[i % d];
  }
  const grad = new Float64Array(flat.length);
  if (scale === 0) return { error, grad };
  const jts = (await ae.grad({ [input]: x }, { of: output, wrt: [input], seed: new Tensor('float32', s, rec.shape) })).grads[input].data as Float32Array;
  for (let i = 0; i < flat.length; i++) grad[i] = s[i] - jts[i];
  return { error, grad };
}

/** x′'s reconstruction error against the data's: the share of data rows reconstructed worse. */
async function autoencoderCheck(ae: Model, ref: Reference, xcf: Float32Array, x0: Float32Array, shape: readonly number[], mad: Float64Array): Promise<Check> {
  const data = (await reconstruction(ae, ref.rows, ref.count, shape, mad, 0)).error;
  const [mine, own] = (await reconstruction(ae, Float32Array.from([...xcf, ...x0]), 2, shape, mad, 0)).error;
  const sorted = Float64Array.from(data).sort();
  const p95 = percentile(sorted, 95);
  const rank = data.filter((e) => e <= mine).length / data.length;
  return {
    name: "plausibility: autoencoder reconstruction error",
    value: mine,
    passed: mine <= p95,
    detail: `x′ reconstructs with error ${mine.toFixed(4)} (x: ${own.toFixed(4)}), above ${(100 * rank).toFixed(1)}% of the ${ref.count} data rows; passes at or below their 95th percentile ${p95.toFixed(4)}`,
  };
}

export const COUNTERFACTUAL_METHODS = {
  counterfactual: {
    info: {
      title: 'Counterfactual explanation (minimal MAD-weighted L1 change to another class)',
      reference: 'Wachter, Mittelstadt, Russell 2017, Counterfactual Explanations without Opening the Black Box',
      taxonomy: passive('rules', 'local'),
    },
    run: counterfactual,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
