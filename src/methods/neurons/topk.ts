/**
 * The bounded state of a dataset-example scan at one site: for every unit the k examples ranked highest and the k
 * ranked lowest, a histogram of its per-example activations, and running sums. Memory is O(units · (k + bins))
 * whatever the dataset size.
 *
 * Ranking is a total order — value first, then the smaller dataset index — so the top k of a union of disjoint
 * slices is exactly the top k of their top k's: partial scans merge without loss.
 */
import { binOf, sameEdges } from './histogram.js';
import type { Check } from '../attribution/explanation.js';
import { unknownNameError } from '../../util/nearest.js';

/** One ranked example of a unit. */
export interface UnitExample {
  /** Position in the dataset (global, offset included). */
  readonly index: number;
  /** The unit's activation: its spatial max (top) or min (bottom) on this example. */
  readonly value: number;
  /** Flat index of the peak among the unit's positions (0 for a site without positions). */
  readonly position: number;
  /** The same position as coordinates: [h, w] for a conv channel, [t] for a token feature, [] for a dense unit. */
  readonly coords: readonly number[];
}

/** Where the units and positions of a site's value lie. */
export interface SiteLayout {
  /** The site as it was asked for (alias or raw name). */
  readonly name: string;
  /** The graph value. */
  readonly value: string;
  readonly rank: number;
  readonly units: number;
  /** Shape of one unit's positions: [H, W] (rank 4), [T] (rank 3), [] (rank 2). */
  readonly positionShape: readonly number[];
}

/** The k best (value desc, index asc) entries per unit, each unit's list kept sorted by insertion. */
export class Ranked {
  readonly values: Float64Array;
  readonly index: Int32Array;
  readonly position: Int32Array;
  /** Entries held per unit (k once k examples were seen). */
  readonly fill: Int32Array;

  constructor(
    readonly units: number,
    readonly k: number,
  ) {
    this.values = new Float64Array(units * k);
    this.index = new Int32Array(units * k).fill(-1);
    this.position = new Int32Array(units * k);
    this.fill = new Int32Array(units);
  }

  /** Offers (v, i, p) to unit u's list; kept if it beats the list's last entry or the list is not full. */
  offer(u: number, v: number, i: number, p: number): void {
    const k = this.k;
    const base = u * k;
    const vals = this.values;
    const idx = this.index;
    let j = this.fill[u];
    if (j === k) {
      const w = vals[base + k - 1];
      if (v < w || (v === w && i > idx[base + k - 1])) return;
      j = k - 1;
    } else {
      this.fill[u] = j + 1;
    }
    const pos = this.position;
    while (j > 0) {
      const w = vals[base + j - 1];
      if (!(v > w || (v === w && i < idx[base + j - 1]))) break;
      vals[base + j] = w;
      idx[base + j] = idx[base + j - 1];
      pos[base + j] = pos[base + j - 1];
      j--;
    }
    vals[base + j] = v;
    idx[base + j] = i;
    pos[base + j] = p;
  }

  /** Unit u's entries, best first (values as stored). */
  entries(u: number): { value: number; index: number; position: number }[] {
    return Array.from({ length: this.fill[u] }, (_, j) => ({ value: this.values[u * this.k + j], index: this.index[u * this.k + j], position: this.position[u * this.k + j] }));
  }

  /** The k best of both lists, per unit. */
  static merge(a: Ranked, b: Ranked): Ranked {
    const out = new Ranked(a.units, a.k);
    for (const r of [a, b]) for (let u = 0; u < r.units; u++) for (const e of r.entries(u)) out.offer(u, e.value, e.index, e.position);
    return out;
  }
}

/** Per-example reductions of a batch at one site: [N × units] each, and the global index of every row. */
export interface Reduced {
  readonly max: ArrayLike<number>;
  readonly argmax: ArrayLike<number>;
  readonly min: ArrayLike<number>;
  readonly argmin: ArrayLike<number>;
  readonly indices: ArrayLike<number>;
}

export interface TallyJSON {
  readonly layout: SiteLayout;
  readonly top: { values: number[]; index: number[]; position: number[]; fill: number[] };
  readonly bottom: { values: number[]; index: number[]; position: number[]; fill: number[] };
  readonly counts: number[];
  readonly sum: number[];
  readonly sumSq: number[];
}

/** Top k, bottom k, histogram and sums of every unit of one site. */
export class SiteTally {
  readonly top: Ranked;
  /** Ranked on −value, so that "best" is the lowest activation. */
  readonly bottom: Ranked;
  /** [units × (edges + 1)] bin counts of the per-example activation (the spatial max). */
  readonly counts: Float64Array;
  readonly sum: Float64Array;
  readonly sumSq: Float64Array;

  constructor(
    readonly layout: SiteLayout,
    readonly k: number,
    readonly edges: Float64Array,
  ) {
    const u = layout.units;
    this.top = new Ranked(u, k);
    this.bottom = new Ranked(u, k);
    this.counts = new Float64Array(u * (edges.length + 1));
    this.sum = new Float64Array(u);
    this.sumSq = new Float64Array(u);
  }

  /** Folds in one batch of per-example reductions. */
  add(r: Reduced): void {
    const { units, name } = this.layout;
    const bins = this.edges.length + 1;
    const { top, bottom, counts, sum, sumSq, edges } = this;
    for (let n = 0; n < r.indices.length; n++) {
      const i = r.indices[n];
      const row = n * units;
      for (let u = 0; u < units; u++) {
        const hi = r.max[row + u] + 0; // + 0: −0 is stored as 0, so equal values compare and serialise alike
        const lo = r.min[row + u] + 0;
        if (hi !== hi || lo !== lo) throw new Error(`dataset examples: site '${name}' unit ${u} is NaN on example ${i}`);
        top.offer(u, hi, i, r.argmax[row + u]);
        bottom.offer(u, -lo + 0, i, r.argmin[row + u]);
        counts[u * bins + binOf(edges, hi)]++;
        sum[u] += hi;
        sumSq[u] += hi * hi;
      }
    }
  }

  /** Unit u's top (or bottom) examples, best first, with coordinates. */
  examples(u: number, which: 'top' | 'bottom'): UnitExample[] {
    const sign = which === 'top' ? 1 : -1;
    return (which === 'top' ? this.top : this.bottom).entries(u).map((e) => ({
      index: e.index,
      value: sign * e.value + 0,
      position: e.position,
      coords: unflatten(e.position, this.layout.positionShape),
    }));
  }

  static merge(a: SiteTally, b: SiteTally): SiteTally {
    const la = a.layout;
    const lb = b.layout;
    if (la.value !== lb.value || la.units !== lb.units || la.positionShape.join() !== lb.positionShape.join()) {
      throw new Error(`merge: site '${la.name}' has ${la.units} units over [${la.positionShape}] in one scan, '${lb.name}' ${lb.units} over [${lb.positionShape}] in the other`);
    }
    if (a.k !== b.k) throw new Error(`merge: the scans keep different k (${a.k} and ${b.k})`);
    if (!sameEdges(a.edges, b.edges)) throw new Error('merge: the scans use different histogram edges; give both the same histogram option');
    const out = new SiteTally(la, a.k, a.edges);
    copyRanked(out.top, Ranked.merge(a.top, b.top));
    copyRanked(out.bottom, Ranked.merge(a.bottom, b.bottom));
    for (let j = 0; j < out.counts.length; j++) out.counts[j] = a.counts[j] + b.counts[j];
    for (let u = 0; u < la.units; u++) {
      out.sum[u] = a.sum[u] + b.sum[u];
      out.sumSq[u] = a.sumSq[u] + b.sumSq[u];
    }
    return out;
  }

  toJSON(): TallyJSON {
    const ranked = (r: Ranked, sign: number) => ({
      values: Array.from(r.values, (v) => sign * v + 0),
      index: Array.from(r.index),
      position: Array.from(r.position),
      fill: Array.from(r.fill),
    });
    return { layout: this.layout, top: ranked(this.top, 1), bottom: ranked(this.bottom, -1), counts: Array.from(this.counts), sum: Array.from(this.sum), sumSq: Array.from(this.sumSq) };
  }

  static fromJSON(j: TallyJSON, k: number, edges: Float64Array): SiteTally {
    const t = new SiteTally(j.layout, k, edges);
    const size = j.layout.units * k;
    const load = (r: Ranked, src: TallyJSON['top'], sign: number, what: string) => {
      if (src.values.length !== size || src.index.length !== size || src.position.length !== size || src.fill.length !== j.layout.units) {
        throw new Error(`fromJSON: site '${j.layout.name}' ${what} lists do not hold ${j.layout.units} units × k = ${k}`);
      }
      src.values.forEach((v, q) => (r.values[q] = sign * v + 0));
      r.index.set(src.index);
      r.position.set(src.position);
      r.fill.set(src.fill);
    };
    load(t.top, j.top, 1, 'top');
    load(t.bottom, j.bottom, -1, 'bottom');
    if (j.counts.length !== t.counts.length) throw new Error(`fromJSON: site '${j.layout.name}' has ${j.counts.length} histogram counts, expected ${t.counts.length}`);
    t.counts.set(j.counts);
    t.sum.set(j.sum);
    t.sumSq.set(j.sumSq);
    return t;
  }
}

function copyRanked(to: Ranked, from: Ranked): void {
  to.values.set(from.values);
  to.index.set(from.index);
  to.position.set(from.position);
  to.fill.set(from.fill);
}

/** Row-major coordinates of a flat index. */
export function unflatten(flat: number, shape: readonly number[]): number[] {
  const coords = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    coords[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return coords;
}

/** A half-open range [start, end) of global dataset indices. */
export type Range = readonly [number, number];

/** The serialised form of a scan (`toJSON`), plain JSON: every number round-trips exactly. */
export interface ExampleScanJSON {
  readonly format: 'glassbox.example-scan';
  readonly version: 1;
  readonly k: number;
  readonly edges: number[];
  readonly covered: Range[];
  readonly requested: Range[];
  readonly sites: TallyJSON[];
  readonly checks: Check[];
}

/**
 * The result of a dataset-example scan: per site and unit the top-k and bottom-k examples, a histogram of the
 * per-example activation (fixed edges, see histogram.ts) and its mean, plus which dataset indices were seen.
 * Scans of disjoint slices merge into exactly the scan of their union: the same top-k and bottom-k lists and the
 * same histogram counts. Mean and std come from float64 running sums, which merge up to rounding (about 1e-16).
 */
export class ExampleScan {
  constructor(
    readonly k: number,
    /** Histogram edges shared by every unit. */
    readonly edges: Float64Array,
    readonly tallies: readonly SiteTally[],
    /** Global index ranges seen, sorted and disjoint. */
    readonly covered: readonly Range[],
    /** Global index ranges the scans were asked for; the scan is complete when all were seen. */
    readonly requested: readonly Range[],
    readonly checks: readonly Check[] = dataChecks(tallies, covered, requested),
  ) {}

  /** Examples seen. */
  get seen(): number {
    return this.covered.reduce((s, [a, b]) => s + b - a, 0);
  }

  get complete(): boolean {
    return this.seen === this.requested.reduce((s, [a, b]) => s + b - a, 0);
  }

  get sites(): SiteLayout[] {
    return this.tallies.map((t) => t.layout);
  }

  /** The tally of a site, by the name it was scanned under or its graph value. */
  tally(site: string): SiteTally {
    const t = this.tallies.find((x) => x.layout.name === site) ?? this.tallies.find((x) => x.layout.value === site);
    if (!t) throw unknownNameError('scanned site', site, this.tallies.map((x) => x.layout.name));
    return t;
  }

  /** The k examples on which the unit's activation (spatial max) is highest, highest first. */
  top(site: string, unit: number): UnitExample[] {
    return this.tally(site).examples(this.unit(site, unit), 'top');
  }

  /** The k examples on which the unit's spatial min is lowest, lowest first. */
  bottom(site: string, unit: number): UnitExample[] {
    return this.tally(site).examples(this.unit(site, unit), 'bottom');
  }

  /** Counts of the unit's per-example activation in the bins (−∞, e₀), [e₀, e₁), …, [e_last, ∞). */
  histogram(site: string, unit: number): { edges: number[]; counts: number[] } {
    const t = this.tally(site);
    const u = this.unit(site, unit);
    const bins = this.edges.length + 1;
    return { edges: Array.from(this.edges), counts: Array.from(t.counts.subarray(u * bins, (u + 1) * bins)) };
  }

  /** Mean and standard deviation of the unit's per-example activation over the examples seen. */
  stats(site: string, unit: number): { mean: number; std: number } {
    const t = this.tally(site);
    const u = this.unit(site, unit);
    return moments(t.sum[u], t.sumSq[u], this.seen);
  }

  merge(other: ExampleScan): ExampleScan {
    return ExampleScan.merge(this, other);
  }

  /** The scan of the union of two scans over disjoint index ranges (throws if they overlap or disagree in settings). */
  static merge(a: ExampleScan, b: ExampleScan): ExampleScan {
    const values = (s: ExampleScan) => s.tallies.map((t) => t.layout.value).sort().join(', ');
    if (values(a) !== values(b)) throw new Error(`merge: the scans cover different sites (${values(a)} vs ${values(b)})`);
    const tallies = a.tallies.map((t) => SiteTally.merge(t, b.tally(t.layout.value)));
    return new ExampleScan(a.k, a.edges, tallies, union([...a.covered, ...b.covered], true), union([...a.requested, ...b.requested], false));
  }

  toJSON(): ExampleScanJSON {
    return {
      format: 'glassbox.example-scan',
      version: 1,
      k: this.k,
      edges: Array.from(this.edges),
      covered: this.covered.map(([s, e]) => [s, e]),
      requested: this.requested.map(([s, e]) => [s, e]),
      sites: this.tallies.map((t) => t.toJSON()),
      checks: [...this.checks],
    };
  }

  static fromJSON(json: ExampleScanJSON | string): ExampleScan {
    const j = (typeof json === 'string' ? JSON.parse(json) : json) as ExampleScanJSON;
    if (j?.format !== 'glassbox.example-scan' || j.version !== 1) throw new Error(`fromJSON: not a glassbox example scan (format ${j?.format}, version ${j?.version})`);
    const edges = Float64Array.from(j.edges);
    const tallies = j.sites.map((s) => SiteTally.fromJSON(s, j.k, edges));
    return new ExampleScan(j.k, edges, tallies, union(j.covered, true), union(j.requested, false), j.checks);
  }

  private unit(site: string, unit: number): number {
    const n = this.tally(site).layout.units;
    if (!Number.isInteger(unit) || unit < 0 || unit >= n) throw new Error(`site '${site}' has units 0..${n - 1}, got ${unit}`);
    return unit;
  }
}

function moments(sum: number, sumSq: number, n: number): { mean: number; std: number } {
  if (n === 0) return { mean: NaN, std: NaN };
  const mean = sum / n;
  return { mean, std: Math.sqrt(Math.max(0, sumSq / n - mean * mean)) };
}

/** Sorted union of ranges, adjacent ones joined; with `disjoint`, overlapping ranges are an error. */
function union(ranges: readonly Range[], disjoint: boolean): Range[] {
  const sorted = ranges.filter(([s, e]) => e > s).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s < last[1] && disjoint) throw new Error(`merge: the scans overlap on dataset indices [${s}, ${Math.min(e, last[1])}); merge scans of disjoint slices only`);
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/**
 * The checks computable from a scan alone: coverage (all requested examples seen), separation (how far above its
 * mean a unit's top-k mean lies, in standard deviations; the top k can never average below the mean) and units
 * that never vary (top-1 equal to bottom-1: dead or constant).
 */
export function dataChecks(tallies: readonly SiteTally[], covered: readonly Range[], requested: readonly Range[]): Check[] {
  const seen = covered.reduce((s, [a, b]) => s + b - a, 0);
  const asked = requested.reduce((s, [a, b]) => s + b - a, 0);
  const checks: Check[] = [{ name: 'coverage', value: seen, passed: seen === asked, detail: `${seen} of ${asked} requested examples seen` }];
  if (seen === 0) return checks;
  for (const t of tallies) {
    const z: number[] = [];
    let [below, constant] = [0, 0];
    for (let u = 0; u < t.layout.units; u++) {
      const { mean, std } = moments(t.sum[u], t.sumSq[u], seen);
      const top = t.examples(u, 'top');
      const topMean = top.reduce((s, e) => s + e.value, 0) / top.length;
      if (topMean < mean - 1e-9 * Math.max(1, Math.abs(mean))) below++;
      if (top[0].value === t.examples(u, 'bottom')[0].value) constant++;
      z.push(std > 0 ? (topMean - mean) / std : 0);
    }
    const avg = z.reduce((s, v) => s + v, 0) / z.length;
    checks.push({
      name: `separation ${t.layout.name}`,
      value: z,
      passed: below === 0,
      detail: `top-${t.k} mean activation is on average ${avg.toFixed(2)} standard deviations above the unit's mean over ${seen} examples; ${below} units below their mean; ${constant} of ${t.layout.units} units constant over the data (dead)`,
    });
  }
  return checks;
}
