/**
 * Neuron hazards (Räuker et al. 2023, III "polysemantic and frivolous neurons"): units that respond to several
 * unrelated things, and units the network does not need.
 *
 * - Polysemantic units (Olah et al. 2020, "Zoom In"; Nguyen et al. 2016): the classes among a unit's top-k examples.
 *   A unit is flagged when at least `minClasses` (default 2) classes each hold at least `minShare` (default 25%) of
 *   its top examples.
 * - Frivolous units (Casper et al. 2021, "Frivolous Units: Wider Networks Are Not Really That Wide", AAAI):
 *   prunable = ablating the unit alone raises the loss by less than `tolerance` and lowers accuracy by at most
 *   `accuracyTolerance`; redundant = the unit's activation (spatial mean for conv channels) is a linear function of
 *   the layer's other units over the dataset, ridge least squares with R² ≥ `r2Threshold` (default 0.9).
 *
 * @example
 * const f = await frivolousUnits(model, mnist.slice(0, 1000), { sites: ['fc1.relu'] });
 * f.layers[0].counts; // { units, prunable, redundant, frivolous }
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mixSeed, mulberry32 } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import type { Check } from '../attribution/explanation.js';
import { ablateUnits, ioNames, positiveInt, unitSite, type UnitSite } from './ablation.js';

/** Per example, each unit's mean value over its other axes (spatial mean of a conv channel): [rows × units]. */
function unitMeans(v: Float32Array, site: UnitSite): Float64Array {
  const rows = v.length / site.rowSize;
  const out = new Float64Array(rows * site.units);
  const per = site.rowSize / site.units;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < site.rowSize; i++) out[r * site.units + (Math.floor(i / site.inner) % site.units)] += v[r * site.rowSize + i] / per;
  }
  return out;
}

async function* unitActivations(model: Model, data: Dataset, site: UnitSite, batchSize: number, signal?: AbortSignal) {
  const { input } = ioNames(model, undefined, 'unit activations');
  for (const b of data.batches(batchSize)) {
    signal?.throwIfAborted();
    const v = (await model.run({ [input]: b.x }, { capture: [site.name], signal })).captures[site.name];
    yield { indices: b.indices, acts: unitMeans(v.data as Float32Array, site) };
  }
}

/** Each unit's k examples of highest (spatially averaged) activation, best first, ties to the lower index; one streaming pass. */
export async function topExamples(model: Model, data: Dataset, options: { site: string; k: number; batchSize?: number; signal?: AbortSignal }): Promise<Int32Array[]> {
  const site = unitSite(model, options.site, 'topExamples');
  const k = positiveInt('topExamples', 'k', options.k);
  if (k > data.size) throw new Error(`topExamples: k = ${k} exceeds the dataset's ${data.size} examples`);
  const vals = Array.from({ length: site.units }, () => new Float64Array(k).fill(-Infinity));
  const idx = Array.from({ length: site.units }, () => new Int32Array(k).fill(-1));
  for await (const { indices, acts } of unitActivations(model, data, site, options.batchSize ?? 256, options.signal)) {
    indices.forEach((ex, r) => {
      for (let u = 0; u < site.units; u++) {
        const a = acts[r * site.units + u];
        if (Number.isNaN(a)) throw new Error(`topExamples: unit ${u} of '${site.name}' is NaN on example ${ex}`);
        const v = vals[u];
        const ix = idx[u];
        if (ix[k - 1] >= 0 && a <= v[k - 1]) continue;
        let j = k - 1;
        for (; j > 0 && (ix[j - 1] < 0 || a > v[j - 1]); j--) {
          v[j] = v[j - 1];
          ix[j] = ix[j - 1];
        }
        v[j] = a;
        ix[j] = ex;
      }
    });
  }
  return idx;
}

export interface PolysemanticityOptions {
  /** A class counts when it holds at least this share of a unit's top examples (default 0.25). */
  readonly minShare?: number;
  /** Flag a unit when at least this many classes count (default 2). */
  readonly minClasses?: number;
  /** Seed of the random-examples baseline (default 0). */
  readonly seed?: number;
}

export interface UnitClasses {
  readonly unit: number;
  /** Distinct classes among the top examples. */
  readonly classes: number;
  /** Entropy of their class distribution over log min(k, classes): 0 one class, 1 as spread as k examples can be. */
  readonly entropy: number;
  readonly dominant: number;
  readonly dominantShare: number;
  readonly polysemantic: boolean;
}

export interface PolysemanticityResult {
  readonly method: 'polysemanticity';
  readonly units: readonly UnitClasses[];
  readonly polysemantic: readonly number[];
  /** The same statistics for 200 seeded random sets of k examples: mean normalised entropy, share flagged. */
  readonly baseline: { readonly entropy: number; readonly flagged: number };
  readonly checks: Check[];
}

function classStats(top: ArrayLike<number>, labels: ArrayLike<number>, numClasses: number, minShare: number, minClasses: number, unit: number, who: string): UnitClasses {
  if (top.length === 0) throw new Error(`${who}: unit ${unit} has no top examples`);
  const counts = new Float64Array(numClasses);
  for (let i = 0; i < top.length; i++) {
    const ex = top[i];
    if (!Number.isInteger(ex) || ex < 0 || ex >= labels.length) throw new Error(`${who}: unit ${unit} lists example ${ex}, outside the ${labels.length} labels`);
    const y = labels[ex];
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) throw new Error(`${who}: example ${ex} has label ${y}, not a class in [0, ${numClasses})`);
    counts[y]++;
  }
  const k = top.length;
  let h = 0;
  let dominant = 0;
  let distinct = 0;
  let counted = 0;
  counts.forEach((c, y) => {
    if (c > 0) {
      distinct++;
      h -= (c / k) * Math.log(c / k);
    }
    if (c > counts[dominant]) dominant = y;
    if (c / k >= minShare) counted++;
  });
  const hmax = Math.log(Math.min(k, numClasses));
  return { unit, classes: distinct, entropy: hmax > 0 ? h / hmax : 0, dominant, dominantShare: counts[dominant] / k, polysemantic: counted >= minClasses };
}

/** Classes among each unit's top examples, with a flag for units whose top examples split over several classes. */
export function polysemanticity(topIndicesPerUnit: readonly ArrayLike<number>[], labels: ArrayLike<number>, numClasses: number, options: PolysemanticityOptions = {}): PolysemanticityResult {
  const who = 'polysemanticity';
  positiveInt(who, 'numClasses', numClasses);
  const { minShare = 0.25, minClasses = 2, seed = 0 } = options;
  if (!(minShare > 0 && minShare <= 1)) throw new Error(`${who}: minShare must be in (0, 1], got ${minShare}`);
  positiveInt(who, 'minClasses', minClasses);
  if (topIndicesPerUnit.length === 0) throw new Error(`${who}: no units given`);
  const units = topIndicesPerUnit.map((top, u) => classStats(top, labels, numClasses, minShare, minClasses, u, who));

  // Baseline: the same statistics for k examples drawn at random (what a unit blind to class would show).
  const rand = mulberry32(mixSeed(seed, 7));
  const k = topIndicesPerUnit[0].length;
  const draws = Array.from({ length: 200 }, () => Int32Array.from({ length: k }, () => Math.floor(rand() * labels.length)));
  const base = draws.map((d, i) => classStats(d, labels, numClasses, minShare, minClasses, i, `${who} baseline`));
  const mean = (xs: readonly UnitClasses[], f: (u: UnitClasses) => number) => xs.reduce((a, u) => a + f(u), 0) / xs.length;
  const flagged = units.filter((u) => u.polysemantic).map((u) => u.unit);
  const baseline = { entropy: mean(base, (u) => u.entropy), flagged: mean(base, (u) => (u.polysemantic ? 1 : 0)) };
  const entropy = mean(units, (u) => u.entropy);
  const checks: Check[] = [
    {
      name: 'random-examples baseline',
      value: entropy,
      detail: `mean normalised class entropy ${entropy.toFixed(3)} of the units' top-${k} examples vs ${baseline.entropy.toFixed(3)} for random sets of ${k} examples; ` +
        `${flagged.length} of ${units.length} units flagged vs ${(100 * baseline.flagged).toFixed(0)}% of random sets`,
    },
  ];
  return { method: 'polysemanticity', units, polysemantic: flagged, baseline, checks };
}

/** Top-k examples per unit of a site (one streaming pass), then `polysemanticity` with the dataset's labels. */
export async function polysemanticUnits(model: Model, data: Dataset, options: PolysemanticityOptions & { site: string; k?: number; batchSize?: number; signal?: AbortSignal }): Promise<PolysemanticityResult> {
  if (!data.labels || data.numClasses === undefined) throw new Error(`polysemanticity: the dataset ${data.name} has no class labels`);
  const top = await topExamples(model, data, { site: options.site, k: options.k ?? 20, batchSize: options.batchSize, signal: options.signal });
  return polysemanticity(top, data.labels, data.numClasses, options);
}

export interface FrivolousOptions {
  readonly sites: readonly string[];
  /** Prunable: ablating the unit raises the mean loss by less than this (nats; default 0.01)… */
  readonly tolerance?: number;
  /** …and lowers accuracy by at most this (default 0). */
  readonly accuracyTolerance?: number;
  readonly replace?: 'zero' | 'mean';
  /** Redundant: R² of the unit from the layer's other units at least this (default 0.9). */
  readonly r2Threshold?: number;
  /** Ridge term, relative to the mean unit variance (default 1e-6). */
  readonly ridge?: number;
  /** Random vectors regressed on the layer as the chance level of R² (default 8). */
  readonly randomVectors?: number;
  readonly batchSize?: number;
  readonly seed?: number;
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

export interface FrivolousLayer {
  readonly site: string;
  readonly deltaLoss: readonly number[];
  readonly deltaAccuracy: readonly number[];
  /** R² of each unit from the others; a constant unit counts as 1 (the intercept reconstructs it). */
  readonly r2: readonly number[];
  readonly prunable: readonly number[];
  readonly redundant: readonly number[];
  readonly counts: { readonly units: number; readonly prunable: number; readonly redundant: number; readonly frivolous: number };
}

export interface FrivolousResult {
  readonly method: 'frivolous-units';
  readonly layers: readonly FrivolousLayer[];
  readonly checks: Check[];
}

/** In-place Cholesky inverse of a symmetric positive definite n × n matrix. */
function spdInverse(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      if (i === j) {
        if (!(s > 0)) throw new Error(`frivolous-units: the unit covariance is not positive definite at ${i}; raise the ridge`);
        l[i * n + i] = Math.sqrt(s);
      } else l[i * n + j] = s / l[j * n + j];
    }
  }
  const inv = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = 0; k < i; k++) s -= l[i * n + k] * y[k];
      y[i] = s / l[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = y[i];
      for (let k = i + 1; k < n; k++) s -= l[k * n + i] * inv[k * n + c];
      inv[i * n + c] = s / l[i * n + i];
    }
  }
  return inv;
}

/**
 * R² of each unit from the others and of each random column from all units, by ridge least squares on the centred
 * scatter matrix S of [units | random] (d × d): with M = S_uu + λI and P = M⁻¹, unit j's coefficients are
 * β = −P_{·j} / P_jj and its residual sum of squares S_jj − βᵀS_{·j} − λ‖β‖² = 1/P_jj − λ − λ‖β‖².
 */
export function reconstructionR2(scatter: Float64Array, units: number, randoms: number, ridge: number): { r2: number[]; random: number[] } {
  const d = units + randoms;
  let tr = 0;
  for (let j = 0; j < units; j++) tr += scatter[j * d + j];
  const lambda = ridge * (tr > 0 ? tr / units : 1);
  const m = new Float64Array(units * units);
  for (let i = 0; i < units; i++) for (let j = 0; j < units; j++) m[i * units + j] = scatter[i * d + j] + (i === j ? lambda : 0);
  const p = spdInverse(m, units);
  const r2 = Array.from({ length: units }, (_, j) => {
    const sjj = scatter[j * d + j];
    if (!(sjj > 1e-12 * Math.max(tr / units, 1e-300))) return 1;
    const pjj = p[j * units + j];
    let bb = 0;
    for (let i = 0; i < units; i++) if (i !== j) bb += (p[i * units + j] / pjj) ** 2;
    return 1 - Math.max(0, 1 / pjj - lambda - lambda * bb) / sjj;
  });
  const random = Array.from({ length: randoms }, (_, r) => {
    const c = units + r;
    const b = Array.from({ length: units }, (_, i) => scatter[i * d + c]);
    const beta = b.map((_, i) => b.reduce((s, bk, k) => s + p[i * units + k] * bk, 0));
    let fit = 0;
    for (let i = 0; i < units; i++) for (let k = 0; k < units; k++) fit += beta[i] * scatter[i * d + k] * beta[k];
    const res = scatter[c * d + c] - 2 * beta.reduce((s, x, i) => s + x * b[i], 0) + fit;
    return 1 - Math.max(0, res) / scatter[c * d + c];
  });
  return { r2, random };
}

/** Centred scatter matrix of each example's unit means plus `randoms` seeded Gaussian columns (one streaming pass). */
async function scatterOf(model: Model, data: Dataset, site: UnitSite, randoms: number, seed: number, batchSize: number, signal?: AbortSignal): Promise<Float64Array> {
  const d = site.units + randoms;
  const sum = new Float64Array(d);
  const xx = new Float64Array(d * d);
  let shift: Float64Array | undefined;
  const row = new Float64Array(d);
  for await (const { indices, acts } of unitActivations(model, data, site, batchSize, signal)) {
    indices.forEach((ex, r) => {
      for (let u = 0; u < site.units; u++) row[u] = acts[r * site.units + u];
      const g = mulberry32(mixSeed(seed, 3, ex));
      for (let k = 0; k < randoms; k++) row[site.units + k] = Math.sqrt(-2 * Math.log(1 - g())) * Math.cos(2 * Math.PI * g());
      shift ??= row.slice(); // shifted sums keep the centring accurate when means are large
      for (let i = 0; i < d; i++) {
        const a = row[i] - shift[i];
        if (Number.isNaN(a)) throw new Error(`frivolous-units: unit ${i} of '${site.name}' is NaN on example ${ex}`);
        sum[i] += a;
        for (let j = 0; j <= i; j++) xx[i * d + j] += a * (row[j] - shift[j]);
      }
    });
  }
  const n = data.size;
  for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) xx[i * d + j] = xx[j * d + i] = xx[i * d + j] - (sum[i] * sum[j]) / n;
  return xx;
}

/** Prunable and redundant units of each site, with a random-vector chance level for R². */
export async function frivolousUnits(model: Model, data: Dataset, options: FrivolousOptions): Promise<FrivolousResult> {
  const who = 'frivolous-units';
  const { tolerance = 0.01, accuracyTolerance = 0, replace = 'zero', r2Threshold = 0.9, ridge = 1e-6, randomVectors = 8, batchSize = 256, seed = 0 } = options;
  if (options.sites.length === 0) throw new Error(`${who}: no sites given`);
  for (const [k, v] of Object.entries({ tolerance, accuracyTolerance, ridge })) if (!(v >= 0 && Number.isFinite(v))) throw new Error(`${who}: ${k} must be a finite number ≥ 0, got ${v}`);
  if (!(r2Threshold > 0 && r2Threshold <= 1)) throw new Error(`${who}: r2Threshold must be in (0, 1], got ${r2Threshold}`);
  if (!Number.isInteger(randomVectors) || randomVectors < 0) throw new Error(`${who}: randomVectors must be a non-negative integer, got ${randomVectors}`);
  if (data.size < 2) throw new Error(`${who}: R² needs at least 2 examples; the dataset ${data.name} has ${data.size}`);
  const sites = options.sites.map((s) => unitSite(model, s, who));
  const layers: FrivolousLayer[] = [];
  const checks: Check[] = [];
  for (const [i, site] of sites.entries()) {
    const abl = await ablateUnits(model, data, { site: site.name, replace, batchSize, randomGroups: 0, seed, signal: options.signal });
    const { r2, random } = reconstructionR2(await scatterOf(model, data, site, randomVectors, seed, batchSize, options.signal), site.units, randomVectors, ridge);
    const deltaLoss = abl.groups.map((g) => g.deltaLoss);
    const deltaAccuracy = abl.groups.map((g) => g.deltaAccuracy);
    const prunable = deltaLoss.flatMap((dl, u) => (dl < tolerance && deltaAccuracy[u] >= -accuracyTolerance ? [u] : []));
    const redundant = r2.flatMap((r, u) => (r >= r2Threshold ? [u] : []));
    const frivolous = new Set([...prunable, ...redundant]).size;
    layers.push({ site: site.name, deltaLoss, deltaAccuracy, r2, prunable, redundant, counts: { units: site.units, prunable: prunable.length, redundant: redundant.length, frivolous } });
    checks.push(...abl.checks.map((c) => ({ ...c, name: `${site.name}: ${c.name}` })));
    if (randomVectors > 0) {
      const worst = Math.max(...random);
      checks.push({
        name: `${site.name}: random-vector R²`,
        value: random.reduce((a, b) => a + b, 0) / random.length,
        passed: worst < r2Threshold,
        detail: `${randomVectors} random vectors regressed on the ${site.units} units over ${data.size} examples reach R² up to ${worst.toFixed(3)} (chance ≈ ${((site.units) / (data.size - 1)).toFixed(3)}); the redundancy threshold is ${r2Threshold}`,
      });
    }
    options.onProgress?.(i + 1, sites.length);
  }
  return { method: 'frivolous-units', layers, checks };
}
