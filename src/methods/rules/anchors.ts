/**
 * Anchors (Ribeiro, Singh, Guestrin, "Anchors: High-Precision Model-Agnostic Explanations", AAAI 2018): a set of
 * predicates A on the input such that perturbations z ~ D(· | A) keep the model's prediction, prec(A) ≥ τ, with
 * probability 1 − δ, and of the largest coverage P_D(A(z)) among those found.
 *
 * The search is the paper's bottom-up beam search (Algorithm 2): extend the B best anchors of the last size by one
 * predicate each, keep candidates whose coverage beats the best anchor's, pick the B best by precision with the
 * KL-LUCB bandit (Kaufmann & Kalyanakrishnan 2013; Algorithm 1 of the paper, with the exploration rate and the
 * defaults of the authors' code), then sample each chosen candidate until its KL confidence bounds at level
 * log(1/δ) put its precision above or below τ: an anchor is a candidate whose lower bound exceeds τ (the paper's
 * prec_lb(A) > τ; the authors' code relaxes it to τ − ε). Every round of sampling is one batched model call.
 *
 * @example
 * const space = tabularSpace(x, await loadIris());
 * const a = await anchors(model, space, { threshold: 0.95, seed: 1 });
 * a.rule; // 'IF petal width (cm) > 1.8 THEN virginica'; a.precision, a.coverage, a.checks
 */
import type { Model } from '../../model/model.js';
import { mulberry32 } from '../../data/datasets/random.js';
import type { Check } from '../attribution/explanation.js';
import { passive, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { predictClasses, type PerturbationSpace, type Predicate } from './perturb.js';

/** Bernoulli KL divergence kl(p, q) = p log(p/q) + (1 − p) log((1 − p)/(1 − q)). */
export function klBernoulli(p: number, q: number): number {
  const e = 1e-15;
  const qq = Math.min(Math.max(q, e), 1 - e);
  const term = (a: number, b: number) => (a > 0 ? a * Math.log(a / b) : 0);
  return term(p, qq) + term(1 - p, 1 - qq);
}

/** Upper KL confidence bound: the largest q ≥ p with kl(p, q) ≤ level, by bisection (Pinsker brackets it). */
export function klUpperBound(p: number, level: number): number {
  let lo = p;
  let hi = Math.min(1, p + Math.sqrt(level / 2));
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (klBernoulli(p, mid) > level) hi = mid;
    else lo = mid;
  }
  return lo;
}

/** Lower KL confidence bound: the smallest q ≤ p with kl(p, q) ≤ level, by bisection. */
export function klLowerBound(p: number, level: number): number {
  let lo = Math.max(0, p - Math.sqrt(level / 2));
  let hi = p;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (klBernoulli(p, mid) > level) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** KL-LUCB's exploration rate β(t, δ) for K arms: log(k₁ K t^α / δ) + log log(…), k₁ = 405.5, α = 1.1. */
export function explorationRate(arms: number, t: number, delta: number): number {
  const v = Math.log((405.5 * arms * t ** 1.1) / delta);
  return v + Math.log(v);
}

export interface AnchorOptions {
  /** Precision threshold τ (default 0.95). */
  readonly threshold?: number;
  /** Confidence 1 − δ of the bounds (default δ = 0.1, as the authors' code). */
  readonly delta?: number;
  /** KL-LUCB's tolerance ε (default 0.15, the authors' tabular explainer's). */
  readonly epsilon?: number;
  /** Beam width B (default 4, as the authors' explainers call the search). */
  readonly beam?: number;
  /** Perturbations per arm pull (default 100). */
  readonly batchSize?: number;
  /** Largest anchor tried (default: every predicate). */
  readonly maxSize?: number;
  /** Samples at most per candidate before it is given up as undecided (default 4000). */
  readonly maxSamplesPerCandidate?: number;
  /** Perturbations from D that coverage is measured on (default 10000). */
  readonly coverageSamples?: number;
  /** Size of the fresh sample the precision check draws (default 1000). */
  readonly freshSamples?: number;
  readonly seed?: number;
  readonly classNames?: readonly string[];
}

export interface AnchorExplanation {
  readonly method: 'anchors';
  readonly taxonomy: Taxonomy;
  /** The anchor's predicates, in the order of the space's predicates. */
  readonly predicates: readonly Predicate[];
  /** `IF a AND b THEN class` (`IF TRUE …` for the empty anchor). */
  readonly rule: string;
  /** The class predicted for x, which the anchor keeps. */
  readonly prediction: number;
  readonly className: string;
  /** Whether an anchor with lower bound above τ was found; if not, the most precise candidate is reported. */
  readonly found: boolean;
  /** Precision estimate, its KL bounds at level δ and the perturbations it rests on. */
  readonly precision: number;
  readonly precisionBounds: readonly [number, number];
  readonly precisionSamples: number;
  readonly coverage: number;
  /** Perturbations the model ran on in the search, in how many model calls, and the candidates sampled. */
  readonly samples: number;
  readonly modelCalls: number;
  readonly candidates: number;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

interface Arm {
  readonly anchor: readonly number[];
  readonly coverage: number;
  n: number;
  positives: number;
}

const mean = (a: Arm) => (a.n === 0 ? 0 : a.positives / a.n);

/** The anchor of x (the space's instance) for `model`'s prediction, by beam search with KL-LUCB. */
export async function anchors(model: Model, space: PerturbationSpace, options: AnchorOptions = {}): Promise<AnchorExplanation> {
  const start = performance.now();
  const o = {
    threshold: options.threshold ?? 0.95,
    delta: options.delta ?? 0.1,
    epsilon: options.epsilon ?? 0.15,
    beam: options.beam ?? 4,
    batchSize: options.batchSize ?? 100,
    maxSize: options.maxSize ?? space.predicates.length,
    maxSamplesPerCandidate: options.maxSamplesPerCandidate ?? 4000,
    coverageSamples: options.coverageSamples ?? 10000,
    freshSamples: options.freshSamples ?? 1000,
    seed: options.seed ?? 0,
  };
  if (!(o.threshold > 0 && o.threshold < 1)) throw new Error(`anchors: threshold must lie in (0, 1), got ${o.threshold}`);
  if (!(o.delta > 0 && o.delta < 1)) throw new Error(`anchors: delta must lie in (0, 1), got ${o.delta}`);
  if (!(o.epsilon > 0 && o.epsilon < 1)) throw new Error(`anchors: epsilon must lie in (0, 1), got ${o.epsilon}`);
  for (const k of ['beam', 'batchSize', 'maxSamplesPerCandidate', 'coverageSamples', 'freshSamples'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`anchors: ${k} must be a positive integer, got ${o[k]}`);
  }
  if (!Number.isInteger(o.maxSize) || o.maxSize < 0) throw new Error(`anchors: maxSize must be a non-negative integer, got ${o.maxSize}`);
  const rand = mulberry32(o.seed);
  const shape = space.inputShape;
  const prediction = (await predictClasses(model, space.x, shape))[0];
  const className = options.classNames?.[prediction] ?? String(prediction);

  const p = space.predicates.length;
  const cover = space.satisfied(o.coverageSamples, rand); // [C, P]
  const coverageOf = (anchor: readonly number[]) => {
    let hits = 0;
    for (let i = 0; i < o.coverageSamples; i++) if (anchor.every((k) => cover[i * p + k] === 1)) hits++;
    return hits / o.coverageSamples;
  };
  let samples = 0;
  let modelCalls = 0;
  /** One batched model call: `batch` perturbations for each arm. */
  const pull = async (arms: readonly Arm[]) => {
    if (arms.length === 0) return;
    const size = shape.reduce((a, b) => a * b, 1);
    const flat = new Float32Array(arms.length * o.batchSize * size);
    arms.forEach((a, i) => flat.set(space.sample(a.anchor, o.batchSize, rand), i * o.batchSize * size));
    const labels = await predictClasses(model, flat, shape);
    modelCalls++;
    samples += labels.length;
    arms.forEach((a, i) => {
      a.n += o.batchSize;
      for (let r = 0; r < o.batchSize; r++) if (labels[i * o.batchSize + r] === prediction) a.positives++;
    });
  };
  const bounds = (a: Arm, beta: number): [number, number] => [klLowerBound(mean(a), beta / a.n), klUpperBound(mean(a), beta / a.n)];

  /** Samples an arm until its bounds at level log(1/δ) lie above or below τ (or its budget is spent). */
  const verify = async (a: Arm): Promise<boolean> => {
    const beta = Math.log(1 / o.delta);
    for (;;) {
      const [lb, ub] = bounds(a, beta);
      if (lb > o.threshold) return true;
      if (ub < o.threshold || a.n >= o.maxSamplesPerCandidate) return false;
      await pull([a]);
    }
  };

  /** KL-LUCB: the `top` arms of highest precision, to within ε, with probability 1 − δ. */
  const klLucb = async (arms: Arm[], top: number): Promise<Arm[]> => {
    await pull(arms.filter((a) => a.n === 0));
    if (arms.length <= top) return arms;
    for (let t = 1; ; t++) {
      const beta = explorationRate(arms.length, t, o.delta);
      const order = [...arms].sort((a, b) => mean(b) - mean(a));
      const chosen = order.slice(0, top);
      const rest = order.slice(top);
      const ub = rest.map((a) => klUpperBound(mean(a), beta / a.n));
      const lb = chosen.map((a) => klLowerBound(mean(a), beta / a.n));
      const u = ub.indexOf(Math.max(...ub));
      const l = lb.indexOf(Math.min(...lb));
      const stuck = rest[u].n >= o.maxSamplesPerCandidate && chosen[l].n >= o.maxSamplesPerCandidate;
      if (ub[u] - lb[l] <= o.epsilon || stuck) return chosen;
      await pull([rest[u], chosen[l]].filter((a) => a.n < o.maxSamplesPerCandidate));
    }
  };

  const arms = new Map<string, Arm>();
  const armOf = (anchor: readonly number[]): Arm => {
    const key = anchor.join(',');
    let a = arms.get(key);
    if (!a) arms.set(key, (a = { anchor, coverage: anchor.length === 0 ? 1 : coverageOf(anchor), n: 0, positives: 0 }));
    return a;
  };

  // The empty anchor first: a prediction that holds everywhere needs no predicate.
  const empty = armOf([]);
  await pull([empty]);
  let best: Arm | undefined = (await verify(empty)) ? empty : undefined;
  let fallback = empty;
  let beam: Arm[] = [empty];
  for (let size = 1; size <= o.maxSize && best !== empty; size++) {
    const bestCoverage = best?.coverage ?? 0;
    // GenerateCands: every beam anchor extended by one predicate it lacks, if that could beat the best coverage.
    const keys = new Set<string>();
    const candidates: Arm[] = [];
    for (const a of beam) {
      for (let k = 0; k < p; k++) {
        if (a.anchor.includes(k)) continue;
        const anchor = [...a.anchor, k].sort((x, y) => x - y);
        const key = anchor.join(',');
        if (keys.has(key)) continue;
        keys.add(key);
        const arm = armOf(anchor);
        if (arm.coverage > bestCoverage) candidates.push(arm);
      }
    }
    if (candidates.length === 0) break;
    beam = await klLucb(candidates, o.beam);
    for (const a of beam) {
      const valid = await verify(a);
      if (valid && a.coverage > (best?.coverage ?? 0)) best = a;
      if (mean(a) > mean(fallback) || fallback === empty) fallback = a;
    }
  }
  const result = best ?? fallback;

  const beta = Math.log(1 / o.delta);
  const [lb, ub] = bounds(result, beta);
  const predicates = result.anchor.map((k) => space.predicates[k]);
  const rule = `IF ${predicates.length === 0 ? 'TRUE' : predicates.map((q) => q.text).join(' AND ')} THEN ${className}`;
  const checks = await anchorChecks(model, space, result.anchor, prediction, { ...o, rand: mulberry32(o.seed ^ 0x5bd1e995), lb });
  return {
    method: 'anchors',
    taxonomy: ANCHOR_METHODS.anchors.info.taxonomy,
    predicates,
    rule,
    prediction,
    className,
    found: best !== undefined,
    precision: mean(result),
    precisionBounds: [lb, ub],
    precisionSamples: result.n,
    coverage: result.coverage,
    samples,
    modelCalls,
    candidates: arms.size,
    checks,
    params: { ...o, space: space.kind, predicates: p },
    ms: performance.now() - start,
  };
}

/** The evidence: the bound against τ, precision on a fresh sample, and (tabular) on the real data the anchor covers. */
async function anchorChecks(
  model: Model,
  space: PerturbationSpace,
  anchor: readonly number[],
  prediction: number,
  o: { threshold: number; delta: number; freshSamples: number; rand: () => number; lb: number },
): Promise<Check[]> {
  const checks: Check[] = [
    {
      name: 'precision lower bound',
      value: o.lb,
      passed: o.lb > o.threshold,
      detail: `KL lower confidence bound (δ = ${o.delta}) of the precision vs τ = ${o.threshold}`,
    },
  ];
  const fresh = await predictClasses(model, space.sample(anchor, o.freshSamples, o.rand), space.inputShape);
  const kept = fresh.filter((c) => c === prediction).length / fresh.length;
  const freshUb = klUpperBound(kept, Math.log(1 / o.delta) / fresh.length);
  checks.push({
    name: 'precision on a fresh sample',
    value: kept,
    passed: freshUb >= o.threshold,
    detail: `${fresh.length} new perturbations keeping the anchor, drawn with another seed; passes unless its KL upper bound (${freshUb.toFixed(4)}) falls below τ`,
  });
  const self = anchor.every((k) => holdsOn(space, space.x, 0, k));
  checks.push({ name: 'instance satisfies the anchor', value: self ? 1 : 0, passed: self, detail: 'x itself keeps every predicate of its anchor' });
  if (space.data) {
    const { rows, count } = space.data;
    const covered = Array.from({ length: count }, (_, r) => r).filter((r) => anchor.every((k) => holdsOn(space, rows, r, k)));
    checks.push({ name: 'coverage on the data', value: covered.length / count, detail: `${covered.length} of ${count} data rows satisfy the anchor` });
    if (covered.length > 0) {
      const f = space.inputShape[0];
      const flat = new Float32Array(covered.length * f);
      covered.forEach((r, i) => flat.set(rows.subarray(r * f, (r + 1) * f), i * f));
      const labels = await predictClasses(model, flat, space.inputShape);
      const same = labels.filter((c) => c === prediction).length / labels.length;
      checks.push({ name: 'precision on the covered data', value: same, detail: `share of the ${covered.length} covered data rows the model gives x's class` });
    }
  }
  return checks;
}

/** Whether row r of flat rows satisfies predicate k (tabular predicates only; segments hold on x itself). */
function holdsOn(space: PerturbationSpace, rows: Float32Array, r: number, k: number): boolean {
  const q = space.predicates[k];
  if (q.kind === 'segment') return rows === space.x;
  const v = rows[r * space.inputShape[0] + q.feature];
  return q.op === '>' ? v > q.threshold : v <= q.threshold;
}

export const ANCHOR_METHODS = {
  anchors: {
    info: {
      title: 'Anchors (KL-LUCB beam search)',
      reference: 'Ribeiro, Singh, Guestrin 2018, Anchors: High-Precision Model-Agnostic Explanations',
      taxonomy: passive('rules', 'local'),
      stochastic: true,
    },
    run: anchors,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
