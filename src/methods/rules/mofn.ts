/**
 * M-of-N rule extraction (Towell & Shavlik, "Extracting refined rules from knowledge-based neural networks", Machine
 * Learning 1993), global and decompositional (Zhang et al. 2021 §III-A). Each unit's weights are clustered (optimal
 * 1-D k-means, the fewest clusters that keep the unit's behaviour), every weight is replaced by its cluster's mean,
 * clusters that do not change whether the unit is active are dropped, and the threshold is re-fitted to the
 * network's own unit; the unit then reads `IF M of {a, b, c} THEN unit`. Searching count vectors over clusters
 * instead of subsets over weights is the saving the method claims, reported with the fidelity of the result.
 *
 * @example
 * const r = await mOfN(trainer.exportModel(), { inputNames: ['a', 'b', 'c', 'd', 'e', 'f'] });
 * r.classClauses[1]; // { m: 2, literals: a, b, c } — `2 of {a, b, c}`
 */
import type { ModelProto } from '../../onnx/proto.js';
import { passive, type MethodInfo } from '../taxonomy.js';
import { asMofN, dnfHolds, formatRule, MAX_TRUTH_TABLE_BITS, type Clause } from './boolean.js';
import type { BoolUnit, Grouping } from './decompositional.js';
import { extractRules, kt, KT_TAXONOMY, type DecompositionalRules, type RuleExtractionOptions } from './kt.js';

export interface MofNOptions extends RuleExtractionOptions {
  /** Most clusters per unit (default 5). */
  readonly maxClusters?: number;
  /** A clustering is accepted when it agrees with the network's unit at most this much less than the exact weights do (default 0). */
  readonly tolerance?: number;
}

export interface MofNRules extends DecompositionalRules {
  /** Each class's rule on the inputs as one `M of {…}` clause, read off its truth table, or null where it is none. */
  readonly classClauses: readonly (Clause | null)[];
  /** Clusters kept over all units vs the weights they replace. */
  readonly clusters: { readonly kept: number; readonly weights: number };
}

export const MOFN_TAXONOMY = passive('rules', 'global');

/** M-of-N rules of every unit, composed into class rules on the inputs. */
export async function mOfN(model: ModelProto | Uint8Array, options: MofNOptions = {}): Promise<MofNRules> {
  const maxClusters = options.maxClusters ?? 5;
  const tolerance = options.tolerance ?? 0;
  if (!Number.isInteger(maxClusters) || maxClusters < 1) throw new Error(`m-of-n: maxClusters must be a positive integer, got ${maxClusters}`);
  if (!(tolerance >= 0 && tolerance < 1)) throw new Error(`m-of-n: tolerance must be in [0, 1), got ${tolerance}`);
  const r = await extractRules('m-of-n', model, options, (u, ctx) => clusterUnit(u, ctx.prev, ctx.target, maxClusters, tolerance));
  const n = r.inputNames.length;
  const classClauses = r.classes.map((c) => {
    const dnf = c.dnf;
    return dnf && n <= Math.min(MAX_TRUTH_TABLE_BITS, options.maxExactInputs ?? 16) ? asMofN((on) => dnfHolds(dnf, on), n) : null;
  });
  const weights = r.units.reduce((s, u) => s + Math.log2(u.exhaustive / 2), 0);
  const kept = r.units.reduce((s, u) => s + u.groups.length, 0);
  return {
    ...r,
    // A class whose rule is one clause reads as it: `IF 2 of {a, b, c} THEN yes`.
    classes: r.classes.map((c, k) => {
      const clause = classClauses[k];
      return clause ? { ...c, rules: [`IF ${formatRule([clause], r.inputNames)} THEN ${c.name}`] } : c;
    }),
    taxonomy: MOFN_TAXONOMY,
    classClauses,
    clusters: { kept, weights },
    checks: [
      ...r.checks,
      { name: 'clusters', value: kept, detail: `${kept} clusters kept in place of ${weights} non-zero weights` },
      {
        name: 'class rules as M-of-N', value: classClauses.filter(Boolean).length,
        detail: classClauses.map((c, k) => `${r.classNames[k]}: ${c ? formatRule([c], r.inputNames) : 'not one M-of-N clause'}`).join('; '),
      },
    ],
  };
}

/**
 * Towell & Shavlik's steps on one unit: cluster, average, eliminate, re-fit the threshold. `prev` holds the
 * network's booleans of the layer below per row, `target` the unit's own state there.
 */
export function clusterUnit(u: BoolUnit, prev: readonly bigint[], target: Uint8Array, maxClusters: number, tolerance: number): Grouping {
  const vars = Array.from(u.gains, (_, v) => v).filter((v) => u.gains[v] !== 0);
  const exact = { base: u.base, groups: vars.map((v) => ({ gain: u.gains[v], members: [v] })) };
  const reference = agreementOf(exact, prev, target);
  let best: { g: Grouping; a: number } | undefined;
  for (let k = 1; k <= Math.min(maxClusters, vars.length); k++) {
    const groups = kmeans1d(vars.map((v) => u.gains[v]), k).map((idx) => {
      const members = idx.map((i) => vars[i]).sort((a, b) => a - b);
      return { gain: members.reduce((s, v) => s + u.gains[v], 0) / members.length, members };
    });
    let g = refit({ base: u.base, groups }, prev, target);
    // Eliminate: drop the weakest clusters while the unit's agreement does not fall.
    for (const c of [...groups].sort((a, b) => Math.abs(a.gain) * a.members.length - Math.abs(b.gain) * b.members.length)) {
      const without = refit({ base: g.base, groups: g.groups.filter((x) => x !== c) }, prev, target);
      if (agreementOf(without, prev, target) >= agreementOf(g, prev, target)) g = without;
    }
    const a = agreementOf(g, prev, target);
    if (!best || a > best.a) best = { g, a };
    if (a >= reference - tolerance) break;
  }
  return best?.g ?? exact;
}

/** The unit's state under a grouping, per row: base + Σ gain·[member on] > 0. */
function sums(g: Grouping, prev: readonly bigint[]): Float64Array {
  return Float64Array.from(prev, (on) => {
    let s = 0;
    for (const c of g.groups) for (const v of c.members) if ((on >> BigInt(v)) & 1n) s += c.gain;
    return s;
  });
}

function agreementOf(g: Grouping, prev: readonly bigint[], target: Uint8Array): number {
  const s = sums(g, prev);
  let k = 0;
  s.forEach((x, r) => (k += (g.base + x > 0 ? 1 : 0) === target[r] ? 1 : 0));
  return k / Math.max(1, prev.length);
}

/**
 * The threshold that best reproduces the unit's states with the weights fixed (Towell & Shavlik retrain the biases;
 * with weights frozen that is this 1-D fit). Among equally good thresholds, the one nearest the current bias.
 */
function refit(g: Grouping, prev: readonly bigint[], target: Uint8Array): Grouping {
  const s = sums(g, prev);
  const distinct = [...new Set(s)].sort((a, b) => a - b);
  const onAt = new Map<number, number>();
  const offAt = new Map<number, number>();
  s.forEach((x, r) => (target[r] ? onAt.set(x, (onAt.get(x) ?? 0) + 1) : offAt.set(x, (offAt.get(x) ?? 0) + 1)));
  // The unit is on iff s > −base: a cut −base ∈ [low, high) between consecutive sums turns off every row at or below low.
  let onAbove = target.reduce((a, t) => a + t, 0);
  let offBelow = 0;
  let bestCorrect = -1;
  let bestBase = g.base;
  for (let i = 0; i <= distinct.length; i++) {
    if (i > 0) {
      offBelow += offAt.get(distinct[i - 1]) ?? 0;
      onAbove -= onAt.get(distinct[i - 1]) ?? 0;
    }
    const low = i === 0 ? -Infinity : distinct[i - 1];
    const high = i === distinct.length ? Infinity : distinct[i];
    // Prefer the current bias where it lies in the cut, else the midpoint (a unit step past the ends).
    const cut = -g.base >= low && -g.base < high ? -g.base : Number.isFinite(low) && Number.isFinite(high) ? (low + high) / 2 : Number.isFinite(low) ? low + 1 : high - 1;
    const correct = offBelow + onAbove;
    if (correct > bestCorrect || (correct === bestCorrect && Math.abs(-cut - g.base) < Math.abs(bestBase - g.base))) {
      bestCorrect = correct;
      bestBase = -cut;
    }
  }
  return { base: bestBase, groups: g.groups };
}

/** Optimal 1-D k-means by dynamic programming over the sorted values: k clusters of indices (k ≤ values). */
export function kmeans1d(values: readonly number[], k: number): number[][] {
  const m = values.length;
  if (!Number.isInteger(k) || k < 1 || k > m) throw new Error(`kmeans1d: k must be in [1, ${m}], got ${k}`);
  const order = values.map((_, i) => i).sort((a, b) => values[a] - values[b]);
  const x = order.map((i) => values[i]);
  const p1 = [0];
  const p2 = [0];
  x.forEach((v, i) => (p1.push(p1[i] + v), p2.push(p2[i] + v * v)));
  const sse = (i: number, j: number) => {
    const n = j - i;
    const s = p1[j] - p1[i];
    return p2[j] - p2[i] - (s * s) / n;
  }; // values x[i..j)
  const cost = Array.from({ length: k + 1 }, () => new Float64Array(m + 1).fill(Infinity));
  const cut = Array.from({ length: k + 1 }, () => new Int32Array(m + 1));
  cost[0][0] = 0;
  for (let c = 1; c <= k; c++) {
    for (let j = c; j <= m; j++) {
      for (let i = c - 1; i < j; i++) {
        const v = cost[c - 1][i] + sse(i, j);
        if (v >= cost[c][j] - 1e-12) continue;
        cost[c][j] = v;
        cut[c][j] = i;
      }
    }
  }
  const clusters: number[][] = [];
  for (let c = k, j = m; c > 0; c--) {
    const i = cut[c][j];
    clusters.unshift(order.slice(i, j));
    j = i;
  }
  return clusters;
}

/** The decompositional rule extractors, with their taxonomy coordinates. */
export const DECOMPOSITIONAL_METHODS = {
  kt: {
    info: { title: 'KT rule extraction (positive/negative attribute search per unit)', reference: 'Fu 1994, Rule generation from neural networks', taxonomy: KT_TAXONOMY },
    run: kt,
  },
  'm-of-n': {
    info: { title: 'M-of-N rule extraction (weight clustering per unit)', reference: 'Towell & Shavlik 1993, Extracting refined rules from knowledge-based neural networks', taxonomy: MOFN_TAXONOMY },
    run: mOfN,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
