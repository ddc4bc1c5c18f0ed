/**
 * Neuron Shapley (Ghorbani & Zou 2020, "Neuron Shapley: Discovering the Responsible Neurons", NeurIPS): the Shapley
 * value of each unit of a site for the model's performance, estimated by truncated Monte Carlo over permutations.
 * Units are added in permutation order, all others ablated (zero or dataset mean); v(S) is the metric on a fixed
 * evaluation set; a permutation is cut short once v is within `tolerance` of v(all units), the remaining marginals
 * counting as 0. Every permutation's next coalitions go through one stacked run (coalitions × examples as rows, each
 * row's keep mask fed to a `scale` intervention), so the whole estimate needs one compiled session.
 *
 * Value functions: 'accuracy'; 'loss' as minus the mean cross-entropy (so a unit that helps gets a positive value);
 * 'logit', the mean true-class logit (additive in the units when the readout is linear: then φ_i is exact).
 *
 * @example
 * const s = await neuronShapley(model, mnist.slice(0, 256), { site: 'fc1.relu', permutations: 32, tolerance: 0.01 });
 * const top = s.ranking.slice(0, 5); // the most responsible units
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { mixSeed, permutation } from '../../data/datasets/random.js';
import type { Model } from '../../model/model.js';
import type { Check } from '../attribution/explanation.js';
import { batchLabels, datasetMean, ioNames, positiveInt, runMasked, Tally, unitSite, type Fill, type MaskedRun } from './ablation.js';

export type ShapleyMetric = 'accuracy' | 'loss' | 'logit';

export interface ShapleyOptions {
  readonly site: string;
  /** Value of a coalition (default 'accuracy'). */
  readonly metric?: ShapleyMetric;
  /** Monte Carlo permutations (default 32; at least 2 for standard errors). */
  readonly permutations?: number;
  /** Cut a permutation once |v(all) − v(S)| < tolerance, in the metric's units (default 0: never). */
  readonly tolerance?: number;
  /** Units outside the coalition are replaced by zero (default) or their dataset mean over `data`. */
  readonly replace?: 'zero' | 'mean';
  readonly seed?: number;
  /** Evaluation examples per batch (default 256). */
  readonly batchSize?: number;
  /** Rows (coalitions × examples) per runtime call (default 4096). */
  readonly maxRows?: number;
  readonly output?: string;
  /** Called after each round with coalitions evaluated so far and the most there could be. */
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

export interface UnitShapley {
  readonly unit: number;
  readonly value: number;
  readonly standardError: number;
  /** 95% normal-approximation interval: value ± 1.96 standard errors. */
  readonly ci95: readonly [number, number];
}

export interface ShapleyResult {
  readonly method: 'neuron-shapley';
  readonly site: string;
  readonly metric: ShapleyMetric;
  readonly permutations: number;
  /** v(all units) and v(no unit). */
  readonly full: number;
  readonly empty: number;
  readonly units: readonly UnitShapley[];
  /** Units by Shapley value, largest first. */
  readonly ranking: readonly number[];
  /** Coalitions evaluated, including v(all) and v(none); a round may evaluate a few past a truncation point. */
  readonly evaluations: number;
  /** Coalitions the estimate used (truncation saves the rest of permutations × units). */
  readonly used: number;
  readonly checks: Check[];
}

const valueOf = (t: Tally, metric: ShapleyMetric) => (metric === 'accuracy' ? t.correct : metric === 'loss' ? -t.loss : t.logit) / t.n;

/** Truncated Monte Carlo Shapley values of a site's units for the model's performance on `data`. */
export async function neuronShapley(model: Model, data: Dataset, options: ShapleyOptions): Promise<ShapleyResult> {
  const who = 'neuron-shapley';
  const site = unitSite(model, options.site, who);
  const { input, output } = ioNames(model, options.output, who);
  const { metric = 'accuracy', permutations = 32, tolerance = 0, replace = 'zero', seed = 0, batchSize = 256, maxRows = 4096 } = options;
  if (!['accuracy', 'loss', 'logit'].includes(metric)) throw new Error(`${who}: metric must be 'accuracy', 'loss' or 'logit', got '${metric}'`);
  if (replace !== 'zero' && replace !== 'mean') throw new Error(`${who}: replace must be 'zero' or 'mean', got '${replace}'`);
  if (!Number.isInteger(permutations) || permutations < 2) throw new Error(`${who}: permutations must be an integer ≥ 2 (standard errors need two), got ${permutations}`);
  if (!(tolerance >= 0 && Number.isFinite(tolerance))) throw new Error(`${who}: tolerance must be a finite number ≥ 0, got ${tolerance}`);
  positiveInt(who, 'batchSize', batchSize);
  positiveInt(who, 'maxRows', maxRows);
  if (data.size === 0) throw new Error(`${who}: the dataset ${data.name} is empty`);
  const classes = model.site(output).shape?.[1];
  if (typeof classes !== 'number') throw new Error(`${who}: output '${output}' must be logits [N, classes] with a fixed class count`);

  const fill: Fill | undefined = replace === 'mean' ? { values: await datasetMean(model, data, site, batchSize, options.signal), perExample: false } : undefined;
  const run: MaskedRun = { model, site, input, output, maxRows, signal: options.signal };
  // The evaluation set is fixed: its batches are gathered once per round (streamed, never all held).
  const values = async (masks: readonly Float32Array[]): Promise<number[]> => {
    const tallies = masks.map(() => new Tally(classes));
    for (const b of data.batches(batchSize)) await runMasked(run, b.x, batchLabels(b, classes, who), masks, tallies, fill);
    return tallies.map((t) => valueOf(t, metric));
  };

  const n = site.units;
  const [full, empty] = await values([new Float32Array(n).fill(1), new Float32Array(n)]);
  const orders = Array.from({ length: permutations }, (_, p) => permutation(n, mixSeed(seed, p)));
  const marginal = Array.from({ length: permutations }, () => new Float64Array(n));
  const state: { next: number; prev: number; mask: Float32Array }[] = orders.map(() => ({ next: Math.abs(full - empty) < tolerance ? n : 0, prev: empty, mask: new Float32Array(n) }));
  // Each round evaluates the next `step` coalitions of every unfinished permutation in one stacked pass.
  const rowsPerMask = Math.min(batchSize, data.size);
  let evaluations = 2;
  let used = 2;
  for (;;) {
    const active = state.map((s, p) => ({ s, p })).filter(({ s }) => s.next < n);
    if (active.length === 0) break;
    const step = Math.max(1, Math.floor(Math.max(1, Math.floor(maxRows / rowsPerMask)) / active.length));
    const plan: { p: number; unit: number; mask: Float32Array }[] = [];
    for (const { s, p } of active) {
      const m = s.mask.slice();
      for (let j = s.next; j < Math.min(n, s.next + step); j++) {
        m[orders[p][j]] = 1;
        plan.push({ p, unit: orders[p][j], mask: m.slice() });
      }
    }
    const v = await values(plan.map((q) => q.mask));
    evaluations += plan.length;
    plan.forEach((q, i) => {
      const s = state[q.p];
      if (s.next >= n || orders[q.p][s.next] !== q.unit) return; // truncated earlier in this round
      marginal[q.p][q.unit] = v[i] - s.prev;
      used++;
      s.prev = v[i];
      s.mask = q.mask;
      s.next++;
      if (s.next < n && Math.abs(full - s.prev) < tolerance) s.next = n; // truncation: the rest contribute 0
    });
    const done = state.reduce((a, s) => a + s.next, 0);
    options.onProgress?.(done, permutations * n);
  }

  const units: UnitShapley[] = Array.from({ length: n }, (_, u) => {
    let mean = 0;
    for (const m of marginal) mean += m[u];
    mean /= permutations;
    let ss = 0;
    for (const m of marginal) ss += (m[u] - mean) ** 2;
    const se = Math.sqrt(ss / (permutations - 1) / permutations);
    return { unit: u, value: mean, standardError: se, ci95: [mean - 1.96 * se, mean + 1.96 * se] as const };
  });
  const ranking = units.map((u) => u.unit).sort((a, b) => units[b].value - units[a].value || a - b);
  const sum = units.reduce((a, u) => a + u.value, 0);
  const delta = sum - (full - empty);
  const widths = units.map((u) => u.ci95[1] - u.ci95[0]);
  const checks: Check[] = [
    {
      name: 'efficiency',
      value: delta,
      // Each permutation's marginals telescope to v(S_cut) − v(∅), with |v(S_cut) − v(all)| < tolerance.
      passed: Math.abs(delta) <= tolerance + 1e-6 * Math.max(1, Math.abs(full), Math.abs(empty)),
      detail: `Σφ = ${sum} vs v(all) − v(none) = ${full} − ${empty} = ${full - empty}`,
    },
    {
      name: 'ci95 widths',
      value: widths,
      detail: `95% intervals over ${permutations} permutations: mean width ${(widths.reduce((a, b) => a + b, 0) / n).toPrecision(3)}, widest ${Math.max(...widths).toPrecision(3)}; ${used} of ${permutations * n + 2} coalitions used (${evaluations} evaluated)`,
    },
  ];
  return { method: 'neuron-shapley', site: options.site, metric, permutations, full, empty, units, ranking, evaluations, used, checks };
}
