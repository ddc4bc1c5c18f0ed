/**
 * Activation patching (causal tracing: Meng et al. 2022, "Locating and Editing Factual Associations in GPT"; Vig et
 * al. 2020; Heimersheim & Nanda 2024, "How to use and interpret activation patching"): run the clean inputs with one
 * site — or one index of it along an axis (a unit, a position, a head) — replaced by its value on the corrupted inputs,
 * and report how far the metric moves towards its corrupted value:
 *
 *   effect = (metric_patched − metric_clean) / (metric_corrupted − metric_clean)
 *
 * 0: the site does not matter for the clean/corrupted difference; 1: patching it alone gives the corrupted behaviour.
 * Per-index patches of one site run together: the clean batch is stacked once per index and each copy gets its own
 * patched value (a 'set' intervention with a full-shape value), so one run covers many indices.
 *
 * @example
 * const { metric } = tokenLogProb(clean.y, clean.positions);
 * const r = await activationPatching(model, { clean: { tokens: x }, corrupted: { tokens: xc }, metric, sites: ['blocks.1.head.0.out.matmul'] });
 */
import type { Model } from '../../model/model.js';
import { concatRows, sizeOf, sliceRows, Tensor, type DType } from '../../runtime/tensor.js';
import type { Check } from '../attribution/explanation.js';
import { pearson, spearman } from '../../evaluate/sanity/similarity.js';
import { mulberry32 } from '../../data/datasets/random.js';

export type Inputs = Readonly<Record<string, Tensor>>;
export type Outputs = Readonly<Record<string, Tensor>>;
/** A scalar summary of a run's outputs over the whole batch (a mean logit difference, a loss, an accuracy). */
export type Metric = (outputs: Outputs) => number;

export interface PatchingOptions {
  readonly clean: Inputs;
  readonly corrupted: Inputs;
  readonly metric: Metric;
  /** Sites to patch (default: every site with a batch axis). */
  readonly sites?: readonly string[];
  /** Patch each index along this axis on its own (1: positions of [N, T, D], 2: its units); default: the whole site. */
  readonly axis?: number;
  /** Only these indices along `axis` (default: all). */
  readonly units?: readonly number[];
  /** Elements of captured or stacked site values at a time (default 2^22): bounds memory. */
  readonly maxElements?: number;
}

/** One row of the effect map. */
export interface PatchEffect {
  readonly site: string;
  /** The index along `axis`, when patched per index. */
  readonly unit?: number;
  readonly metric: number;
  readonly effect: number;
}

export interface PatchingResult {
  readonly method: 'activation-patching';
  readonly effects: readonly PatchEffect[];
  readonly clean: number;
  readonly corrupted: number;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

/** The metric on one run's outputs; a non-finite value is an error naming the run. */
export function evalMetric(metric: Metric, outputs: Outputs, run: string): number {
  const m = metric(outputs);
  if (typeof m !== 'number' || !Number.isFinite(m)) throw new Error(`metric returned ${String(m)} on the ${run} run; it must return a finite number`);
  return m;
}

/** Clean and corrupted must feed the same inputs with the same dtypes and shapes. */
export function checkPair(model: Model, clean: Inputs, corrupted: Inputs): number {
  const names = model.inputs.map((i) => i.name);
  for (const n of names) {
    const a = clean[n];
    const b = corrupted[n];
    if (!a) throw new Error(`clean inputs lack '${n}'`);
    if (!b) throw new Error(`corrupted inputs lack '${n}'`);
    if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) {
      throw new Error(`clean and corrupted '${n}' differ: ${a.dtype} [${a.shape.join(', ')}] vs ${b.dtype} [${b.shape.join(', ')}]`);
    }
  }
  for (const k of [...Object.keys(clean), ...Object.keys(corrupted)]) if (!names.includes(k)) throw new Error(`'${k}' is not an input of the model (it takes ${names.join(', ')})`);
  const rank = clean[names[0]]?.rank ?? 0;
  return rank > 0 ? clean[names[0]].shape[0] : 1;
}

/** The gap the effects are normalised by; an error when clean and corrupted give the same metric. */
export function metricGap(clean: number, corrupted: number): number {
  const gap = corrupted - clean;
  if (gap === 0) throw new Error(`clean and corrupted runs give the same metric (${clean}); there is no difference to attribute`);
  return gap;
}

/** A site with a batch axis: its name and how many elements it holds for the batch at hand. */
export interface BatchSite {
  readonly name: string;
  readonly value: string;
  readonly elements: number;
  readonly dtype?: DType;
}

/** Sites whose axis 0 is the batch: their leading dimension follows the batch size between two probe runs. */
export async function batchSites(model: Model, inputs: Inputs): Promise<BatchSite[]> {
  const shapes = (extra: number) => Object.fromEntries(model.inputs.map((i) => {
    const t = inputs[i.name];
    const batched = i.shape && i.shape.length > 0 && typeof i.shape[0] !== 'number';
    return [i.name, batched ? [t.shape[0] + extra, ...t.shape.slice(1)] : t.shape];
  }));
  const [a, b] = await Promise.all([model.resolveSites(shapes(0)), model.resolveSites(shapes(1))]);
  return a
    .filter((s, i) => s.shape && s.shape.length > 0 && b[i].shape?.[0] === Number(s.shape[0]) + 1)
    .map((s) => ({ name: s.name, value: s.value, elements: sizeOf(s.shape!.map(Number)), dtype: s.dtype }));
}

/** The requested sites (an unknown name lists the nearest); each must have a batch axis. */
export function checkSites(model: Model, sites: readonly string[], batched: readonly BatchSite[]): BatchSite[] {
  const byValue = new Map(batched.map((b) => [b.value, b]));
  return sites.map((s) => {
    const b = byValue.get(model.site(s).value);
    if (!b) throw new Error(`site '${s}' has no batch axis; patching needs one value per example`);
    return { ...b, name: s };
  });
}

/** Consecutive groups of sites holding at most `maxElements` values each (one site at least): captures stay bounded. */
export function siteGroups(sites: readonly BatchSite[], maxElements: number): string[][] {
  if (!(maxElements >= 1)) throw new Error(`maxElements must be ≥ 1, got ${maxElements}`);
  const out: string[][] = [];
  let size = Infinity;
  for (const s of sites) {
    if (size + s.elements > maxElements) {
      out.push([]);
      size = 0;
    }
    out[out.length - 1].push(s.name);
    size += s.elements;
  }
  return out;
}

type Indexable = { [i: number]: number | bigint; length: number };

/** Flat indices of index `unit` along `axis` of `shape`, per (outer, inner) block: calls f(flatIndex). */
function forUnit(shape: readonly number[], axis: number, unit: number, f: (i: number) => void): void {
  const outer = sizeOf(shape.slice(0, axis));
  const inner = sizeOf(shape.slice(axis + 1));
  for (let o = 0; o < outer; o++) {
    const base = (o * shape[axis] + unit) * inner;
    for (let i = 0; i < inner; i++) f(base + i);
  }
}

/** `clean` with index `unit` along `axis` taken from `corrupted`. */
export function withUnit(clean: Tensor, corrupted: Tensor, axis: number, unit: number): Tensor {
  const out = new Tensor(clean.dtype, clean.data.slice() as typeof clean.data, clean.shape);
  const dst = out.data as unknown as Indexable;
  const src = corrupted.data as unknown as Indexable;
  forUnit(clean.shape, axis, unit, (i) => (dst[i] = src[i]));
  return out;
}

/** Whether index `unit` along `axis` holds the same values in both tensors (its patch then changes nothing). */
function sameUnit(a: Tensor, b: Tensor, axis: number, unit: number | undefined): boolean {
  const x = a.data as unknown as Indexable;
  const y = b.data as unknown as Indexable;
  let same = true;
  if (unit === undefined) {
    for (let i = 0; i < x.length && same; i++) same = x[i] === y[i];
  } else forUnit(a.shape, axis, unit, (i) => (same &&= x[i] === y[i]));
  return same;
}

/** Each output's rows [k·B, (k+1)·B): copy k of a stacked run. */
function copyOutputs(outputs: Outputs, k: number, rows: number): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(outputs).map(([n, t]) => [n, t.rank > 0 && t.shape[0] % rows === 0 && t.shape[0] > rows ? sliceRows(t, k * rows, (k + 1) * rows) : t]));
}

/** Runs the clean inputs once per patched value (stacked copies), returning the metric of each. */
export async function patchedMetrics(model: Model, clean: Inputs, site: string, values: readonly Tensor[], metric: Metric, rows: number): Promise<number[]> {
  if (values.length === 0) return [];
  const k = values.length;
  const inputs = Object.fromEntries(Object.entries(clean).map(([n, t]) => [n, k === 1 ? t : concatRows(Array.from({ length: k }, () => t))]));
  const value = concatRows(values);
  const { outputs } = await model.run(inputs, { interventions: [{ kind: 'set', site, value }] });
  return values.map((_, c) => evalMetric(metric, k === 1 ? outputs : copyOutputs(outputs, c, rows), `patched '${site}'`));
}

/** Captures of the given sites on one run, with its outputs. */
export async function captureRun(model: Model, inputs: Inputs, sites: readonly string[]): Promise<{ outputs: Outputs; values: Record<string, Tensor> }> {
  const { outputs, captures } = await model.run(inputs, { capture: sites });
  return { outputs, values: captures };
}

function checkAxis(site: string, shape: readonly number[], axis: number, units: readonly number[] | undefined): number[] {
  if (!Number.isInteger(axis) || axis < 1 || axis >= shape.length) {
    throw new Error(`axis ${axis} is out of range for site '${site}' of shape [${shape.join(', ')}] (axis 0 is the batch)`);
  }
  const n = shape[axis];
  const list = units ?? Array.from({ length: n }, (_, i) => i);
  for (const u of list) if (!Number.isInteger(u) || u < 0 || u >= n) throw new Error(`unit ${u} is out of range: axis ${axis} of '${site}' has ${n} indices`);
  return [...list];
}

/** Activation patching of every site (or every index of it along `axis`) from the corrupted run into the clean run. */
export async function activationPatching(model: Model, options: PatchingOptions): Promise<PatchingResult> {
  const t0 = performance.now();
  const { clean, corrupted, metric, axis } = options;
  const rows = checkPair(model, clean, corrupted);
  const batched = await batchSites(model, clean);
  const sites = options.sites ?? batched.map((b) => b.name);
  if (sites.length === 0) throw new Error('activationPatching: no sites to patch');
  const checked = checkSites(model, sites, batched);
  if (options.units && axis === undefined) throw new Error('activationPatching: units need an axis to index');
  const maxElements = options.maxElements ?? 2 ** 22;
  const groups = siteGroups(checked, maxElements);

  const mClean = evalMetric(metric, (await model.run(clean)).outputs, 'clean');
  const mCorrupt = evalMetric(metric, (await model.run(corrupted)).outputs, 'corrupted');
  const gap = metricGap(mClean, mCorrupt);
  const effects: PatchEffect[] = [];
  for (const group of groups) effects.push(...(await patchGroup(model, options, group, mClean, gap, rows, maxElements)));
  const checks: Check[] = [await fullPatchCheck(model, clean, corrupted, metric, mCorrupt), await engineCheck(model, options, effects[0], mClean, gap)];
  return {
    method: 'activation-patching',
    effects,
    clean: mClean,
    corrupted: mCorrupt,
    checks,
    params: { sites: sites.length, axis, units: options.units?.length, rows },
    ms: performance.now() - t0,
  };
}

/** The effects of one group of sites: their clean and corrupted values captured together. */
async function patchGroup(model: Model, o: PatchingOptions, sites: readonly string[], mClean: number, gap: number, rows: number, maxElements: number): Promise<PatchEffect[]> {
  const { clean, corrupted, metric, axis } = o;
  const c = await captureRun(model, clean, sites);
  const k = await captureRun(model, corrupted, sites);
  const effects: PatchEffect[] = [];
  for (const site of sites) {
    const a = c.values[site];
    const b = k.values[site];
    if (a.shape.join() !== b.shape.join()) throw new Error(`site '${site}' has shape [${a.shape.join(', ')}] on clean but [${b.shape.join(', ')}] on corrupted inputs`);
    const units: (number | undefined)[] = axis === undefined ? [undefined] : checkAxis(site, a.shape, axis, o.units);
    const perRun = Math.max(1, Math.floor(maxElements / Math.max(1, a.size)));
    const todo = units.filter((u) => !sameUnit(a, b, axis ?? 0, u));
    const metrics = new Map<number | undefined, number>();
    for (let i = 0; i < todo.length; i += perRun) {
      const chunk = todo.slice(i, i + perRun);
      const ms = await patchedMetrics(model, clean, site, chunk.map((u) => (u === undefined ? b : withUnit(a, b, axis!, u))), metric, rows);
      chunk.forEach((u, j) => metrics.set(u, ms[j]));
    }
    for (const u of units) {
      const m = metrics.get(u) ?? mClean; // identical values: the patch is the clean run itself
      effects.push({ site, ...(u === undefined ? {} : { unit: u }), metric: m, effect: (m - mClean) / gap });
    }
  }
  return effects;
}

/** Patching every input from the corrupted run must reproduce the corrupted metric (effect 1). */
async function fullPatchCheck(model: Model, clean: Inputs, corrupted: Inputs, metric: Metric, mCorrupt: number): Promise<Check> {
  const interventions = model.inputs.map((i) => ({ kind: 'set' as const, site: i.name, value: corrupted[i.name] }));
  const m = evalMetric(metric, (await model.run(clean, { interventions })).outputs, 'all-inputs-patched');
  const delta = Math.abs(m - mCorrupt);
  return { name: 'full-patch', value: delta, passed: delta <= 1e-4 * Math.max(1, Math.abs(mCorrupt)), detail: `|metric with every input patched − corrupted metric| = ${delta.toPrecision(3)}` };
}

/** The first effect recomputed by the engine's own 'patch' intervention, unstacked: the batching must agree. */
async function engineCheck(model: Model, o: PatchingOptions, e: PatchEffect, mClean: number, gap: number): Promise<Check> {
  const iv = { kind: 'patch' as const, site: e.site, from: o.corrupted, ...(e.unit === undefined ? {} : { units: [e.unit], axis: o.axis }) };
  const m = evalMetric(o.metric, (await model.run(o.clean, { interventions: [iv] })).outputs, `engine-patched '${e.site}'`);
  const delta = Math.abs((m - mClean) / gap - e.effect);
  return { name: 'engine-agreement', value: delta, passed: delta <= 1e-4, detail: `|effect − effect by the engine's patch intervention| on '${e.site}'${e.unit === undefined ? '' : ` unit ${e.unit}`}: ${delta.toPrecision(3)}` };
}

/**
 * The mean log-probability of target tokens y [B, T] at the given positions, read from `output` (logits [B, T, V]),
 * with its gradient with respect to the logits ((onehot − softmax) / count): the seed of attribution patching.
 */
export function tokenLogProb(y: Tensor, positions: readonly number[], output = 'logits'): { metric: Metric; seed: (outputs: Outputs) => Tensor<'float32'> } {
  if (y.rank !== 2) throw new Error(`tokenLogProb: targets must be [B, T], got [${y.shape.join(', ')}]`);
  const [B, T] = y.shape;
  for (const p of positions) if (!Number.isInteger(p) || p < 0 || p >= T) throw new Error(`tokenLogProb: position ${p} is outside [0, ${T})`);
  const count = B * positions.length;
  if (count === 0) throw new Error('tokenLogProb: no positions');
  const logits = (outputs: Outputs) => {
    const l = outputs[output];
    if (!l) throw new Error(`tokenLogProb: the outputs have no '${output}' (they have ${Object.keys(outputs).join(', ')})`);
    if (l.rank !== 3 || l.shape[0] !== B || l.shape[1] !== T) throw new Error(`tokenLogProb: '${output}' must be [${B}, ${T}, V], got [${l.shape.join(', ')}]`);
    return l as Tensor<'float32'>;
  };
  const each = (l: Tensor<'float32'>, f: (row: number, target: number, lse: number) => void) => {
    const V = l.shape[2];
    for (let b = 0; b < B; b++) {
      for (const t of positions) {
        const row = (b * T + t) * V;
        let max = -Infinity;
        for (let v = 0; v < V; v++) max = Math.max(max, l.data[row + v]);
        let s = 0;
        for (let v = 0; v < V; v++) s += Math.exp(l.data[row + v] - max);
        f(row, Number(y.data[b * T + t]), max + Math.log(s));
      }
    }
  };
  return {
    metric: (outputs) => {
      const l = logits(outputs);
      let sum = 0;
      each(l, (row, target, lse) => (sum += l.data[row + target] - lse));
      return sum / count;
    },
    seed: (outputs) => {
      const l = logits(outputs);
      const g = Tensor.zeros('float32', l.shape);
      const V = l.shape[2];
      each(l, (row, target, lse) => {
        for (let v = 0; v < V; v++) g.data[row + v] = -Math.exp(l.data[row + v] - lse) / count;
        g.data[row + target] += 1 / count;
      });
      return g;
    },
  };
}

export interface AttributionPatchingOptions extends PatchingOptions {
  /** ∂metric/∂output at the clean outputs: a tensor, or a function of the clean outputs (e.g. `tokenLogProb(...).seed`). */
  readonly seed: Tensor | ((outputs: Outputs) => Tensor);
  /** The output the seed weights (default: the first output). */
  readonly of?: string;
  /** Also run real activation patching on the same sites and report the correlations (default true). */
  readonly compare?: boolean;
  /** The Pearson r with real patching that the 'pearson' check asks for (default 0.5). */
  readonly minCorrelation?: number;
}

export interface AttributionPatchingResult {
  readonly method: 'attribution-patching';
  /** Estimated effects (same normalisation as activation patching). */
  readonly effects: readonly PatchEffect[];
  /** The real effects, when compared. */
  readonly actual?: readonly PatchEffect[];
  readonly clean: number;
  readonly corrupted: number;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

/**
 * Attribution patching (Nanda 2023, "Attribution Patching: Activation Patching At Industrial Scale"; Syed, Rager &
 * Conmy 2023): the first-order estimate metric_patched − metric_clean ≈ (a_corrupted − a_clean) · ∂metric/∂a, with
 * the gradient from one backward pass on the clean inputs, summed over the site (or over one index along `axis`),
 * normalised like activation patching. The seed must be the metric's gradient with respect to the output; a check
 * compares it with a finite difference of the metric.
 */
export async function attributionPatching(model: Model, options: AttributionPatchingOptions): Promise<AttributionPatchingResult> {
  const t0 = performance.now();
  const { clean, corrupted, metric, axis } = options;
  const rows = checkPair(model, clean, corrupted);
  const batched = await batchSites(model, clean);
  const sites = options.sites ?? batched.filter((b) => b.dtype === 'float32').map((b) => b.name);
  if (sites.length === 0) throw new Error('attributionPatching: no sites to patch');
  const checked = checkSites(model, sites, batched);
  for (const s of checked) if (s.dtype !== 'float32') throw new Error(`attributionPatching: site '${s.name}' holds ${s.dtype}; gradients need float32`);
  if (options.units && axis === undefined) throw new Error('attributionPatching: units need an axis to index');
  const cleanOut = (await model.run(clean)).outputs;
  const mClean = evalMetric(metric, cleanOut, 'clean');
  const mCorrupt = evalMetric(metric, (await model.run(corrupted)).outputs, 'corrupted');
  const gap = metricGap(mClean, mCorrupt);
  const of = options.of ?? model.outputs[0].name;
  if (!cleanOut[of]) throw new Error(`attributionPatching: the model has no output '${of}' (it has ${Object.keys(cleanOut).join(', ')})`);
  const seed = typeof options.seed === 'function' ? options.seed(cleanOut) : options.seed;
  const effects: PatchEffect[] = [];
  // Per group: clean and corrupted values and the gradient, three site-sized tensors each.
  for (const group of siteGroups(checked, Math.max(1, (options.maxElements ?? 2 ** 22) / 3))) {
    const c = await captureRun(model, clean, group);
    const k = await captureRun(model, corrupted, group);
    const { grads } = await model.grad(clean, { of, wrt: group, seed });
    for (const site of group) {
      const a = c.values[site].data as Float32Array;
      const b = k.values[site].data as Float32Array;
      const g = grads[site].data as Float32Array;
      const shape = c.values[site].shape;
      const units: (number | undefined)[] = axis === undefined ? [undefined] : checkAxis(site, shape, axis, options.units);
      for (const u of units) {
        let est = 0;
        if (u === undefined) for (let i = 0; i < a.length; i++) est += (b[i] - a[i]) * g[i];
        else forUnit(shape, axis!, u, (i) => (est += (b[i] - a[i]) * g[i]));
        effects.push({ site, ...(u === undefined ? {} : { unit: u }), metric: mClean + est, effect: est / gap });
      }
    }
  }
  const checks: Check[] = [seedCheck(metric, cleanOut, of, seed)];
  let actual: readonly PatchEffect[] | undefined;
  if (options.compare ?? true) {
    actual = (await activationPatching(model, { clean, corrupted, metric, sites, axis, units: options.units, maxElements: options.maxElements })).effects;
    const est = effects.map((e) => e.effect);
    const real = actual.map((e) => e.effect);
    const r = est.length >= 2 ? pearson(est, real) : NaN;
    const rho = est.length >= 2 ? spearman(est, real) : NaN;
    const min = options.minCorrelation ?? 0.5;
    checks.push({ name: 'pearson', value: r, passed: r >= min, detail: `Pearson r of estimated vs real patching effects over ${est.length} patches (asked ≥ ${min})` });
    checks.push({ name: 'spearman', value: rho, detail: `Spearman ρ of estimated vs real patching effects over ${est.length} patches` });
  }
  return { method: 'attribution-patching', effects, actual, clean: mClean, corrupted: mCorrupt, checks, params: { sites: sites.length, axis, of, rows }, ms: performance.now() - t0 };
}

/** The seed against the metric: ⟨seed, δ⟩ vs the central difference of the metric along a random direction δ. */
function seedCheck(metric: Metric, outputs: Outputs, of: string, seed: Tensor): Check {
  const out = outputs[of];
  if (seed.shape.join() !== out.shape.join()) throw new Error(`attributionPatching: the seed is [${seed.shape.join(', ')}] but '${of}' is [${out.shape.join(', ')}]`);
  const rand = mulberry32(7);
  const x = out.data as Float32Array;
  const dir = Float32Array.from(x, () => 2 * rand() - 1);
  const h = 1e-2;
  const at = (sign: number) => evalMetric(metric, { ...outputs, [of]: new Tensor('float32', x.map((v, i) => v + sign * h * dir[i]), out.shape) }, 'seed-check');
  const fd = (at(1) - at(-1)) / (2 * h);
  let lin = 0;
  const s = seed.data as Float32Array;
  for (let i = 0; i < s.length; i++) lin += s[i] * dir[i];
  const rel = Math.abs(fd - lin) / Math.max(1e-6, Math.abs(fd), Math.abs(lin));
  return { name: 'seed-matches-metric', value: rel, passed: rel <= 0.05, detail: `directional derivative of the metric: ⟨seed, δ⟩ = ${lin.toPrecision(4)} vs central difference ${fd.toPrecision(4)}` };
}
