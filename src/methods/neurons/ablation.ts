/**
 * Unit ablation (Räuker et al. 2023, III "perturbation and ablation"; e.g. Morcos et al. 2018, "On the importance of
 * single directions for generalization"): replace units of a site by zero, by their dataset mean, or by the values of
 * another (seeded, random) example, and measure what the model loses on a labelled dataset: Δ mean cross-entropy,
 * Δ accuracy and Δ per-class accuracy against the unablated model.
 *
 * All groups run through one compiled variant: each ablation is a per-row keep mask fed to a `scale` intervention
 * (plus an `add` of the replacement), and groups × examples are stacked as the rows of one runtime call.
 *
 * @example
 * const r = await ablateUnits(model, (await loadMnist('test')).slice(0, 1000), { site: 'fc1.relu', replace: 'mean' });
 * r.groups.sort((a, b) => a.deltaAccuracy - b.deltaAccuracy); // most harmful units first
 */
import type { Batch, Dataset } from '../../data/datasets/dataset.js';
import { mixSeed, mulberry32, permutation } from '../../data/datasets/random.js';
import { defaultUnitAxis, type Intervention } from '../../model/interventions.js';
import type { Model } from '../../model/model.js';
import { concatRows, Tensor } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { passiveHidden, RAUKER, type MethodInfo } from '../taxonomy.js';
import { frivolousUnits, polysemanticUnits } from './hazards.js';
import { neuronShapley } from './shapley.js';

export type Replacement = 'zero' | 'mean' | 'resample';

/** A site seen as units: the unit axis of its values and how many units it has. */
export interface UnitSite {
  /** The name as asked (alias or raw value name). */
  readonly name: string;
  /** Shape of one example's value (no batch axis). */
  readonly shape: readonly number[];
  /** The unit axis in the full shape (batch axis 0). */
  readonly axis: number;
  readonly units: number;
  /** Values per example. */
  readonly rowSize: number;
  /** Values per unit and example after the unit axis (H·W for a conv channel). */
  readonly inner: number;
}

/** Looks the site up (unknown names list the nearest) and checks it has a batch axis and fixed float32 sizes. */
export function unitSite(model: Model, name: string, who: string): UnitSite {
  const s = model.site(name);
  const shape = s.shape;
  if (!shape || shape.length < 2 || shape.slice(1).some((d) => typeof d !== 'number' || d < 1)) {
    throw new Error(`${who}: site '${name}' needs a batch axis and fixed sizes; its shape is [${(shape ?? []).join(', ')}]`);
  }
  if (s.dtype !== 'float32') throw new Error(`${who}: site '${name}' holds ${s.dtype ?? 'an unknown type'}; units must be float32`);
  const row = shape.slice(1) as number[];
  const axis = defaultUnitAxis(shape.length);
  return { name, shape: row, axis, units: row[axis - 1], rowSize: row.reduce((a, b) => a * b, 1), inner: row.slice(axis).reduce((a, b) => a * b, 1) };
}

/** Each group a non-empty list of distinct in-range integer units. */
export function checkGroups(groups: readonly (readonly number[])[], site: UnitSite, who: string): void {
  groups.forEach((g, i) => {
    if (!Array.isArray(g) || g.length === 0) throw new Error(`${who}: group ${i} is empty; give at least one unit`);
    const seen = new Set<number>();
    for (const u of g) {
      if (!Number.isInteger(u) || u < 0 || u >= site.units) throw new Error(`${who}: group ${i} has unit ${u}, out of range; '${site.name}' has ${site.units} units`);
      if (seen.has(u)) throw new Error(`${who}: group ${i} lists unit ${u} twice`);
      seen.add(u);
    }
  });
}

export function positiveInt(who: string, what: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${who}: ${what} must be a positive integer, got ${v}`);
  return v;
}

/** Loss, accuracy and per-class accuracy (NaN for a class without examples). */
export interface Metrics {
  readonly loss: number;
  readonly accuracy: number;
  readonly classAccuracy: readonly number[];
}

/** Sums over examples of cross-entropy (computed on the host from logits in float64), hits and true-class logits. */
export class Tally {
  loss = 0;
  correct = 0;
  logit = 0;
  n = 0;
  readonly classCorrect: Float64Array;
  readonly classCount: Float64Array;

  constructor(readonly classes: number) {
    this.classCorrect = new Float64Array(classes);
    this.classCount = new Float64Array(classes);
  }

  /** Adds `labels.length` rows of logits starting at row `from`. */
  add(logits: Float32Array, from: number, labels: Int32Array): void {
    const c = this.classes;
    for (let i = 0; i < labels.length; i++) {
      const o = (from + i) * c;
      const y = labels[i];
      let best = 0;
      for (let j = 1; j < c; j++) if (logits[o + j] > logits[o + best]) best = j;
      let s = 0;
      for (let j = 0; j < c; j++) s += Math.exp(logits[o + j] - logits[o + best]);
      this.loss += Math.log(s) + logits[o + best] - logits[o + y];
      this.logit += logits[o + y];
      const hit = best === y ? 1 : 0;
      this.correct += hit;
      this.classCorrect[y] += hit;
      this.classCount[y]++;
      this.n++;
    }
  }

  metrics(): Metrics {
    return {
      loss: this.loss / this.n,
      accuracy: this.correct / this.n,
      classAccuracy: Array.from(this.classCorrect, (k, i) => (this.classCount[i] > 0 ? k / this.classCount[i] : NaN)),
    };
  }
}

/** The model's single input and the logits output it is scored on. */
export function ioNames(model: Model, output: string | undefined, who: string): { input: string; output: string } {
  if (model.inputs.length !== 1) throw new Error(`${who}: the model must have one input, it has ${model.inputs.length}`);
  const outs = model.outputs.map((o) => o.name);
  if (output !== undefined && !outs.includes(output)) throw new Error(`${who}: unknown output '${output}'; the model's outputs are ${outs.join(', ')}`);
  return { input: model.inputs[0].name, output: output ?? outs[0] };
}

/** Class labels of a batch, checked against the number of logits. */
export function batchLabels(b: Batch, classes: number, who: string): Int32Array {
  if (b.y.rank !== 1) throw new Error(`${who}: needs a class label per example; targets have shape [${b.y.shape.join(', ')}]`);
  const labels = Int32Array.from(b.y.data as BigInt64Array, Number);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0 || labels[i] >= classes) throw new Error(`${who}: example ${b.indices[i]} has label ${labels[i]}, outside the model's ${classes} classes`);
  }
  return labels;
}

/** What replaces ablated units: nothing (zero), one value per site element (a mean), or one per example (resampling). */
export interface Fill {
  readonly values: Float32Array;
  readonly perExample: boolean;
}

export interface MaskedRun {
  readonly model: Model;
  readonly site: UnitSite;
  readonly input: string;
  readonly output: string;
  /** Rows per runtime call (examples × masks). */
  readonly maxRows: number;
  readonly signal?: AbortSignal;
}

const MAX_FLOATS = 1 << 24; // 64 MiB of float32 per stacked feed

/**
 * Runs a batch once per keep mask (one factor per unit: 1 keeps the unit, 0 replaces it by `fill`, or by zero),
 * masks × examples stacked as rows; adds each mask's results to its tally. Values: x·m + fill·(1 − m), so an
 * all-ones mask reproduces the unablated values bit for bit.
 */
export async function runMasked(r: MaskedRun, x: Tensor, labels: Int32Array, masks: readonly Float32Array[], tallies: readonly Tally[], fill?: Fill): Promise<void> {
  const { site } = r;
  const b = labels.length;
  const perRow = Math.max(x.size / b, fill ? site.rowSize : 0, site.units);
  const k = Math.max(1, Math.min(Math.floor(r.maxRows / b), Math.floor(MAX_FLOATS / (b * perRow))));
  const fshape = [0, ...site.shape.map((d, i) => (i + 1 === site.axis ? d : 1))];
  for (let m0 = 0; m0 < masks.length; m0 += k) {
    r.signal?.throwIfAborted();
    const chunk = masks.slice(m0, m0 + k);
    const rows = chunk.length * b;
    const factor = new Float32Array(rows * site.units);
    chunk.forEach((m, j) => {
      for (let e = 0; e < b; e++) factor.set(m, (j * b + e) * site.units);
    });
    fshape[0] = rows;
    const ivs: Intervention[] = [{ site: site.name, kind: 'scale', factor: Tensor.float32(factor, fshape) }];
    if (fill) ivs.push({ site: site.name, kind: 'add', value: Tensor.float32(fillValues(site, chunk, b, fill), [rows, ...site.shape]) });
    const xs = chunk.length === 1 ? x : concatRows(new Array<Tensor>(chunk.length).fill(x));
    const out = await r.model.run({ [r.input]: xs }, { interventions: ivs, signal: r.signal });
    const logits = out.outputs[r.output];
    if (logits.dtype !== 'float32' || logits.rank !== 2) throw new Error(`output '${r.output}' must be float32 logits [N, classes], got ${logits}`);
    chunk.forEach((_, j) => tallies[m0 + j].add(logits.data as Float32Array, j * b, labels));
  }
}

/** fill·(1 − m) for every stacked row: [masks × examples, ...site]. */
function fillValues(site: UnitSite, masks: readonly Float32Array[], b: number, fill: Fill): Float32Array {
  const n = site.rowSize;
  const out = new Float32Array(masks.length * b * n);
  masks.forEach((m, j) => {
    for (let e = 0; e < b; e++) {
      const src = fill.perExample ? e * n : 0;
      const dst = (j * b + e) * n;
      for (let i = 0; i < n; i++) {
        const keep = m[Math.floor(i / site.inner) % site.units];
        if (keep !== 1) out[dst + i] = fill.values[src + i] * (1 - keep);
      }
    }
  });
  return out;
}

/** The site's values of every example averaged over a dataset (one capture pass): [rowSize]. */
export async function datasetMean(model: Model, data: Dataset, site: UnitSite, batchSize: number, signal?: AbortSignal): Promise<Float32Array> {
  if (data.size === 0) throw new Error(`mean of '${site.name}': the dataset ${data.name} is empty`);
  const { input } = ioNames(model, undefined, 'datasetMean');
  const acc = new Float64Array(site.rowSize);
  for (const batch of data.batches(batchSize)) {
    signal?.throwIfAborted();
    const v = (await model.run({ [input]: batch.x }, { capture: [site.name], signal })).captures[site.name].data as Float32Array;
    for (let i = 0; i < v.length; i++) acc[i % site.rowSize] += v[i];
  }
  return Float32Array.from(acc, (s) => s / data.size);
}

/** The site's values for a batch's resampling partners: each example gets another, seeded, random example's values. */
async function resampled(model: Model, data: Dataset, site: UnitSite, input: string, indices: Int32Array, seed: number): Promise<Fill> {
  const rand = mulberry32(seed);
  const from = Int32Array.from(indices, (p) => {
    if (data.size < 2) return p;
    let q = p;
    while (q === p) q = Math.floor(rand() * data.size);
    return q;
  });
  const out = await model.run({ [input]: data.gather(from).x }, { capture: [site.name] });
  return { values: out.captures[site.name].data as Float32Array, perExample: true };
}

export interface AblationOptions {
  readonly site: string;
  /** Unit groups ablated together (default: every unit alone). */
  readonly groups?: readonly (readonly number[])[];
  /** What replaces the units (default 'zero'); 'mean' is the dataset mean of each site value over `data`. */
  readonly replace?: Replacement;
  /** Examples per batch (default 128). */
  readonly batchSize?: number;
  /** Rows (groups × examples) per runtime call (default 4096). */
  readonly maxRows?: number;
  /** Random groups drawn per group size above 1, for comparison (default 8). */
  readonly randomGroups?: number;
  /** Seed of resampling partners and random groups (default 0). */
  readonly seed?: number;
  /** The logits output (default the first). */
  readonly output?: string;
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

export interface GroupEffect {
  readonly units: readonly number[];
  readonly metrics: Metrics;
  readonly deltaLoss: number;
  readonly deltaAccuracy: number;
  readonly deltaClassAccuracy: readonly number[];
  /** Mean effect of random groups of the same size (groups larger than 1). */
  readonly random?: { readonly deltaLoss: number; readonly deltaAccuracy: number; readonly samples: number };
}

export interface AblationResult {
  readonly method: 'unit-ablation';
  readonly site: string;
  readonly replace: Replacement;
  readonly examples: number;
  readonly baseline: Metrics;
  readonly groups: readonly GroupEffect[];
  readonly checks: Check[];
}

/** Keep masks (1 everywhere but the group's units). */
export function keepMask(units: number, ablated: readonly number[]): Float32Array {
  const m = new Float32Array(units).fill(1);
  for (const u of ablated) m[u] = 0;
  return m;
}

/** Ablates each group of units and measures Δloss, Δaccuracy and Δ per-class accuracy on `data`. */
export async function ablateUnits(model: Model, data: Dataset, options: AblationOptions): Promise<AblationResult> {
  const who = 'unit-ablation';
  const site = unitSite(model, options.site, who);
  const { input, output } = ioNames(model, options.output, who);
  const { replace = 'zero', seed = 0, batchSize = 128, maxRows = 4096, randomGroups = 8 } = options;
  if (!['zero', 'mean', 'resample'].includes(replace)) throw new Error(`${who}: replace must be 'zero', 'mean' or 'resample', got '${replace}'`);
  positiveInt(who, 'batchSize', batchSize);
  positiveInt(who, 'maxRows', maxRows);
  if (!Number.isInteger(randomGroups) || randomGroups < 0) throw new Error(`${who}: randomGroups must be a non-negative integer, got ${randomGroups}`);
  if (data.size === 0) throw new Error(`${who}: the dataset ${data.name} is empty`);
  const groups = options.groups ?? Array.from({ length: site.units }, (_, u) => [u]);
  if (groups.length === 0) throw new Error(`${who}: no groups given`);
  checkGroups(groups, site, who);

  // Random comparison groups: `randomGroups` per distinct size > 1 (below the site's width).
  const sizes = [...new Set(groups.map((g) => g.length))].filter((s) => s > 1 && s < site.units);
  const rand = sizes.flatMap((s, i) => Array.from({ length: randomGroups }, (_, j) => ({ size: s, units: [...permutation(site.units, mixSeed(seed, 1, i, j)).subarray(0, s)] })));
  const masks = [new Float32Array(site.units).fill(1), ...groups.map((g) => keepMask(site.units, g)), ...rand.map((g) => keepMask(site.units, g.units))];
  const classes = model.site(output).shape?.[1];
  if (typeof classes !== 'number') throw new Error(`${who}: output '${output}' must be logits [N, classes] with a fixed class count`);
  const tallies = masks.map(() => new Tally(classes));
  const plain = new Tally(classes);
  const fill: Fill | undefined = replace === 'mean' ? { values: await datasetMean(model, data, site, batchSize, options.signal), perExample: false } : undefined;
  const run: MaskedRun = { model, site, input, output, maxRows, signal: options.signal };
  const batches = data.batches(batchSize);
  let done = 0;
  for (const batch of batches) {
    options.signal?.throwIfAborted();
    const labels = batchLabels(batch, classes, who);
    const logits = (await model.run({ [input]: batch.x }, { signal: options.signal })).outputs[output];
    plain.add(logits.data as Float32Array, 0, labels);
    const f = replace === 'resample' ? await resampled(model, data, site, input, batch.indices, mixSeed(seed, 2, done)) : fill;
    await runMasked(run, batch.x, labels, masks, tallies, f);
    options.onProgress?.(++done, batches.count);
  }

  const baseline = plain.metrics();
  const effect = (t: Tally, units: readonly number[]) => {
    const m = t.metrics();
    return { units, metrics: m, deltaLoss: m.loss - baseline.loss, deltaAccuracy: m.accuracy - baseline.accuracy, deltaClassAccuracy: m.classAccuracy.map((a, c) => a - baseline.classAccuracy[c]) };
  };
  const randomEffects = rand.map((g, i) => ({ size: g.size, ...effect(tallies[1 + groups.length + i], g.units) }));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const randomBySize = new Map(sizes.map((s) => {
    const rs = randomEffects.filter((e) => e.size === s);
    return [s, { deltaLoss: mean(rs.map((e) => e.deltaLoss)), deltaAccuracy: mean(rs.map((e) => e.deltaAccuracy)), samples: rs.length }] as const;
  }));
  const effects: GroupEffect[] = groups.map((g, i) => {
    const e = effect(tallies[1 + i], g);
    const r = randomGroups > 0 ? randomBySize.get(g.length) : undefined;
    return r ? { ...e, random: r } : e;
  });

  const noop = tallies[0].metrics();
  const noopDelta = Math.max(Math.abs(noop.loss - baseline.loss), Math.abs(noop.accuracy - baseline.accuracy));
  const checks: Check[] = [{
    name: 'no-op ablation',
    value: noopDelta,
    passed: noopDelta <= 1e-6 * Math.max(1, Math.abs(baseline.loss)),
    detail: `keeping every unit through the ablation graph gives loss ${noop.loss} and accuracy ${noop.accuracy} vs the plain model's ${baseline.loss} and ${baseline.accuracy}`,
  }];
  for (const [s, r] of randomBySize) {
    if (randomGroups === 0) break;
    const given = effects.filter((e) => e.units.length === s);
    const worse = given.filter((e) => e.deltaAccuracy < r.deltaAccuracy).length;
    checks.push({
      name: `random groups of ${s}`,
      value: r.deltaAccuracy,
      detail: `${r.samples} random groups of ${s} units change accuracy by ${r.deltaAccuracy.toFixed(4)} and loss by ${r.deltaLoss.toFixed(4)} on average; ${worse} of the ${given.length} given groups of that size hurt accuracy more`,
    });
  }
  return { method: 'unit-ablation', site: options.site, replace, examples: data.size, baseline, groups: effects, checks };
}

export const ABLATION_METHODS = {
  'unit-ablation': {
    info: { title: 'Unit ablation (zero, mean, resample)', reference: 'Morcos et al. 2018, On the importance of single directions for generalization', taxonomy: passiveHidden('global', RAUKER.ablation) },
    run: ablateUnits,
  },
  'neuron-shapley': {
    info: { title: 'Neuron Shapley (truncated Monte Carlo)', reference: 'Ghorbani & Zou 2020, Neuron Shapley: discovering the responsible neurons', taxonomy: passiveHidden('global', RAUKER.shapley), stochastic: true },
    run: neuronShapley,
  },
  polysemanticity: {
    info: { title: 'Polysemantic units (classes among top examples)', reference: 'Olah et al. 2020, Zoom In: an introduction to circuits (polysemantic neurons)', taxonomy: passiveHidden('global', RAUKER.hazards) },
    run: polysemanticUnits,
  },
  'frivolous-units': {
    info: { title: 'Frivolous units (prunable and redundant)', reference: 'Casper et al. 2021, Frivolous units: wider networks are not really that wide', taxonomy: passiveHidden('global', RAUKER.hazards) },
    run: frivolousUnits,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
