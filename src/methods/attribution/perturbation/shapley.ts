/**
 * Shapley values of feature groups with the baseline as the absent value, v(S) = f(x on S, baseline elsewhere).
 * Sampled (Castro, Gómez & Tejada 2009, "Polynomial calculation of the Shapley value based on sampling"; Štrumbelj &
 * Kononenko 2014): the mean over seeded random permutations of each feature's marginal contribution as the
 * permutation adds features one by one. Every permutation's contributions sum to f(x) − f(baseline) exactly, so the
 * completeness check holds for any number of samples. Exact (`exact: true`): the Shapley formula over all 2^d
 * coalitions, for d ≤ 16 features.
 *
 * A group's value is shared equally by its values, so attributions over values also sum to f(x) − f(baseline);
 * `extra.groupValues` holds the per-group Shapley values.
 *
 * @example
 * const sv = await shapleySampling(model, { x }, { target: 3, featureMask: patchMask([1, 28, 28], 7), samples: 50 });
 * sv.checks[0]; // completeness (passes by construction); sv.checks[1]: standard error of the sampled values
 */
import type { Model } from '../../../model/model.js';
import { Tensor } from '../../../runtime/tensor.js';
import { Attributor, type AttributionOptions } from '../attributor.js';
import { resolveBaseline, type Baseline } from '../baseline.js';
import { completenessCheck, type Attribution, type Check } from '../explanation.js';
import { exampleRandom } from '../seeding.js';
import { coalitions, describeBaseline, featureGroups, groupTable, positiveInteger, result, scoreCoalitions, spread, type FeatureGroups } from './features.js';

export interface ShapleyOptions extends AttributionOptions {
  /** Players: an integer group id per value of one example, [1, ...] or [N, ...] (default: masks.ts `defaultWindow` patches). */
  readonly featureMask?: Tensor;
  /** The value of an absent feature (default 0). */
  readonly baseline?: Baseline;
  /** Random permutations per example (default 25). */
  readonly samples?: number;
  readonly seed?: number;
  /** Enumerate all coalitions instead of sampling (d ≤ 16 features). */
  readonly exact?: boolean;
  /** Largest relative completeness delta that passes (default 1e-3: float32 rounding only). */
  readonly tolerance?: number;
}

export const MAX_EXACT_FEATURES = 16;

/** 1 / (d · C(d − 1, s)) = s! (d − s − 1)! / d!: the weight of a coalition of size s in feature j's Shapley sum. */
export function shapleyWeights(d: number): Float64Array {
  const w = new Float64Array(d);
  let binom = 1; // C(d − 1, s)
  for (let s = 0; s < d; s++) {
    w[s] = 1 / (d * binom);
    binom = (binom * (d - 1 - s)) / (s + 1);
  }
  return w;
}

export function requireEnumerable(groups: readonly FeatureGroups[], what: string): void {
  groups.forEach((g, i) => {
    if (g.count > MAX_EXACT_FEATURES) {
      throw new Error(`${what}: exact enumeration scores 2^d coalitions per example; example ${i} has d = ${g.count} features (at most ${MAX_EXACT_FEATURES}): sample instead, or pass a coarser featureMask`);
    }
  });
}

const popcount = (v: number) => {
  let n = 0;
  for (; v; v &= v - 1) n++;
  return n;
};

export async function shapleySampling(model: Model, inputs: Readonly<Record<string, Tensor>>, options: ShapleyOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const P = positiveInteger(options.samples ?? 25, 'shapley sampling: samples');
  const seed = options.seed ?? 0;
  const exact = options.exact ?? false;
  const a = await Attributor.create(model, inputs, options);
  const groups = featureGroups(options.featureMask, a.rowShape, a.n, 'shapley sampling');
  if (exact) requireEnumerable(groups, 'shapley sampling');
  const b = resolveBaseline(options.baseline, a.x, 'shapley sampling: baseline').data;
  const R = a.rowSize;
  const width = Math.max(0, ...groups.map((g) => g.count));

  // Rows of example i from first[i]: row 0 is the empty coalition (f(baseline)); then every coalition but the full
  // one (exact, coalition c = row index as a bit set), or the proper prefixes of each permutation (sampled).
  const rowsOf = (d: number) => (exact ? 2 ** d - 1 : 1 + P * Math.max(0, d - 1));
  const first = new Int32Array(a.n + 1);
  for (let i = 0; i < a.n; i++) first[i + 1] = first[i] + rowsOf(groups[i].count);
  const c = coalitions(first[a.n], width);
  const perms: Int32Array[] = [];
  for (let i = 0; i < a.n; i++) {
    const d = groups[i].count;
    c.owner.fill(i, first[i], first[i + 1]);
    if (exact) {
      for (let r = 1; r < 2 ** d - 1; r++) for (let g = 0; g < d; g++) c.keep[(first[i] + r) * width + g] = (r >> g) & 1;
      continue;
    }
    const rand = exampleRandom(seed, a.x.data.subarray(i * R, (i + 1) * R));
    const perm = new Int32Array(P * d);
    for (let p = 0; p < P; p++) {
      const order = perm.subarray(p * d, (p + 1) * d);
      order.forEach((_, k) => (order[k] = k));
      for (let k = d - 1; k > 0; k--) {
        const u = Math.floor(rand() * (k + 1));
        [order[k], order[u]] = [order[u], order[k]];
      }
      for (let t = 1; t < d; t++) {
        const r = first[i] + 1 + p * (d - 1) + (t - 1);
        for (let k = 0; k < t; k++) c.keep[r * width + order[k]] = 1;
      }
    }
    perms.push(perm);
  }
  const f = await scoreCoalitions(a, b, groups, c);

  const values: Float64Array[] = [];
  const errors: number[] = [];
  for (let i = 0; i < a.n; i++) {
    const d = groups[i].count;
    const v = (r: number) => (r === rowsOf(d) ? a.scores0[i] : f[first[i] + r]); // the full coalition is x itself
    const phi = new Float64Array(d);
    if (exact) {
      const w = shapleyWeights(d);
      for (let s = 0; s < 2 ** d; s++) for (let g = 0; g < d; g++) if (!((s >> g) & 1)) phi[g] += w[popcount(s)] * (v(s | (1 << g)) - v(s));
    } else {
      const sq = new Float64Array(d);
      const perm = perms[i];
      for (let p = 0; p < P; p++) {
        let prev = v(0);
        for (let t = 1; t <= d; t++) {
          const cur = t === d ? a.scores0[i] : v(1 + p * (d - 1) + (t - 1));
          const g = perm[p * d + t - 1];
          phi[g] += (cur - prev) / P;
          sq[g] += (cur - prev) ** 2 / P;
          prev = cur;
        }
      }
      errors.push(P > 1 ? Math.max(0, ...Array.from(phi, (m, g) => Math.sqrt(Math.max(0, sq[g] - m * m) / (P - 1)))) : NaN);
    }
    values.push(phi);
  }
  const attr = spread(a, groups, values, true);
  const fb = groups.map((_, i) => f[first[i]]);
  const checks: Check[] = [completenessCheck(new Tensor('float32', attr, a.x.shape), a.scores0, fb, options.tolerance ?? 1e-3)];
  if (!exact) {
    checks.push({
      name: 'standard error',
      value: errors,
      detail: `largest standard error of a feature's mean marginal contribution over the ${P} permutations, per example (NaN for one permutation)`,
    });
  }
  return result(a, 'shapley-sampling', attr, started, checks, {
    ...(exact ? { exact: true } : { samples: P, seed }),
    features: groups.map((g) => g.count),
    baseline: describeBaseline(options.baseline),
  }, { groupValues: groupTable(values), baselineScores: fb });
}
