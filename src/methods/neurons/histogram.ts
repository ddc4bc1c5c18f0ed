/**
 * Histogram bins that do not depend on the data, so histograms of disjoint dataset slices add up exactly to the
 * histogram of their union (counts are integers; the edges are the same numbers in every process).
 *
 * Edges e_0 < … < e_{m−1} make m + 1 bins: an underflow bin (−∞, e_0), the bins [e_{i−1}, e_i), and an overflow bin
 * [e_{m−1}, +∞). The default is a signed log₂ scale, 4 bins per octave over magnitudes 2⁻¹⁰ … 2¹⁰ and an edge at 0:
 * ReLU zeros land in [0, 2⁻¹⁰), tiny negatives in [−2⁻¹⁰, 0), and anything beyond ±1024 in the outer bins.
 */

/** How histogram edges are chosen: explicit edges, m equal bins over [min, max], or a signed log₂ scale. */
export type BinSpec =
  | { readonly edges: readonly number[] }
  | { readonly min: number; readonly max: number; readonly bins: number }
  | { readonly log2: readonly [number, number]; readonly perOctave?: number };

export const DEFAULT_BINS: BinSpec = { log2: [-10, 10], perOctave: 4 };

/** The edges of a bin spec, checked: finite and strictly increasing. */
export function binEdges(spec: BinSpec = DEFAULT_BINS): Float64Array {
  let edges: number[];
  if ('edges' in spec) {
    edges = [...spec.edges];
  } else if ('bins' in spec) {
    const { min, max, bins } = spec;
    if (!Number.isInteger(bins) || bins < 1) throw new Error(`histogram: bins must be a positive integer, got ${bins}`);
    if (!(Number.isFinite(min) && Number.isFinite(max) && min < max)) throw new Error(`histogram: need finite min < max, got [${min}, ${max}]`);
    edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? max : min + ((max - min) * i) / bins));
  } else {
    const [lo, hi] = spec.log2;
    const per = spec.perOctave ?? 4;
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo < hi)) throw new Error(`histogram: log2 must be integers lo < hi, got [${lo}, ${hi}]`);
    if (!Number.isInteger(per) || per < 1) throw new Error(`histogram: perOctave must be a positive integer, got ${per}`);
    const pos = Array.from({ length: (hi - lo) * per + 1 }, (_, j) => 2 ** (lo + j / per));
    edges = [...pos.map((e) => -e).reverse(), 0, ...pos];
  }
  if (edges.length === 0) throw new Error('histogram: needs at least one edge');
  for (let i = 0; i < edges.length; i++) {
    if (!Number.isFinite(edges[i])) throw new Error(`histogram: edge ${i} is ${edges[i]}; edges must be finite`);
    if (i > 0 && !(edges[i] > edges[i - 1])) throw new Error(`histogram: edges must increase strictly, but edge ${i} (${edges[i]}) ≤ edge ${i - 1} (${edges[i - 1]})`);
  }
  return Float64Array.from(edges, (e) => e + 0); // + 0 turns −0 into 0
}

/** The bin of v: the number of edges ≤ v (0 is the underflow bin, edges.length the overflow bin). */
export function binOf(edges: Float64Array, v: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function sameEdges(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
