/**
 * Compositional explanations of neurons (Mu & Andreas, "Compositional Explanations of Neurons", NeurIPS 2020): the
 * label of a unit is a logical formula of concepts — built left to right with AND, OR and AND NOT up to `maxLength`
 * concepts — found by beam search on the same dataset IoU as network dissection (the unit's thresholded, upsampled
 * mask against the formula's mask). The gain over the best single concept says how much the composition adds.
 *
 * Each candidate is scored without materialising it: with f the formula so far and c a concept,
 * |f ∧ c| gives |f ∨ c| = |f| + |c| − |f ∧ c| and |f ∧ ¬c| = |f| − |f ∧ c|, both for the formula masks and for their
 * intersections with the unit; only the beam's formulas are materialised as dataset-wide bitsets.
 *
 * @example
 * const e = await explainCompositional(model, 'c2.conv', concepts, { maxLength: 3, beamSize: 5 });
 * e.units[3].formula; // 'texture:stripes-horizontal OR texture:stripes-vertical'
 */
import type { ConceptDataset } from '../../data/datasets/concepts.js';
import type { Model } from '../../model/model.js';
import type { Check } from '../attribution/explanation.js';
import type { Taxonomy } from '../taxonomy.js';
import { DISSECTION_METHODS, unitMasks, type DissectOptions } from './dissection.js';

export type Connective = 'AND' | 'OR' | 'AND NOT';

export interface CompositionalOptions extends DissectOptions {
  /** Most concepts in a formula (default 3). */
  readonly maxLength?: number;
  /** Formulas kept per step (default 5). */
  readonly beamSize?: number;
  /** Channels to explain (default all). */
  readonly units?: readonly number[];
}

export interface UnitFormula {
  readonly unit: number;
  /** Left-deep: ((leaves[0] ops[0] leaves[1]) ops[1] leaves[2]) … */
  readonly formula: string;
  readonly leaves: readonly string[];
  readonly ops: readonly Connective[];
  readonly iou: number;
  /** The formula's IoU exceeds the threshold. */
  readonly labelled: boolean;
  readonly single: { readonly concept: string; readonly iou: number };
  /** iou − single.iou (≥ 0: single concepts are formulas too). */
  readonly gain: number;
}

export interface CompositionalExplanation {
  readonly method: 'compositional-explanations';
  readonly taxonomy: Taxonomy;
  readonly site: string;
  readonly units: readonly UnitFormula[];
  /** The same search for the random directions of the site. */
  readonly random: readonly UnitFormula[];
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

/** Mu & Andreas's beam search for the best formula of each unit of a conv site. */
export async function explainCompositional(model: Model, site: string, concepts: ConceptDataset, options: CompositionalOptions = {}): Promise<CompositionalExplanation> {
  const t0 = performance.now();
  const { maxLength = 3, beamSize = 5, iouThreshold = 0.04 } = options;
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new Error(`explainCompositional: maxLength must be a positive integer, got ${maxLength}`);
  if (!Number.isInteger(beamSize) || beamSize < 1) throw new Error(`explainCompositional: beamSize must be a positive integer, got ${beamSize}`);
  if (!(iouThreshold >= 0 && iouThreshold < 1)) throw new Error(`explainCompositional: iouThreshold must be in [0, 1), got ${iouThreshold}`);
  const um = await unitMasks(model, site, concepts, options);
  const K = um.channels;
  const chosen = options.units ?? Array.from({ length: K }, (_, k) => k);
  for (const k of chosen) if (!Number.isInteger(k) || k < 0 || k >= K) throw new Error(`explainCompositional: unit ${k} is not a channel of '${site}' (it has ${K})`);
  const search = (u: number, unit: number) => beamSearch(um.pixels[u], um.bank, maxLength, beamSize, unit, iouThreshold);
  const units = chosen.map((k) => search(k, k));
  const random = Array.from({ length: um.randomUnits }, (_, r) => search(K + r, r));
  const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const [unitIoU, randomIoU] = [mean(units.map((u) => u.iou)), mean(random.map((u) => u.iou))];
  const checks: Check[] = [
    {
      name: 'formula IoU vs random directions',
      value: unitIoU,
      passed: random.length ? unitIoU > randomIoU : undefined,
      detail: `mean best-formula IoU ${unitIoU.toFixed(4)} over ${units.length} units; ${random.length ? `${randomIoU.toFixed(4)} over ${random.length} random directions` : 'no random baseline'}`,
    },
    {
      name: 'IoU gain over single concepts',
      value: units.map((u) => u.gain),
      passed: units.every((u) => u.gain >= 0),
      detail: `mean gain ${mean(units.map((u) => u.gain)).toFixed(4)}; ${units.filter((u) => u.ops.length > 0).length} of ${units.length} units are best explained by a composition`,
    },
  ];
  return {
    method: 'compositional-explanations',
    taxonomy: DISSECTION_METHODS['compositional-explanations'].info.taxonomy,
    site,
    units,
    random,
    checks,
    params: { ...um.params, maxLength, beamSize, iouThreshold, units: chosen },
    ms: performance.now() - t0,
  };
}

interface Candidate {
  readonly leaves: readonly number[];
  readonly ops: readonly Connective[];
  /** |formula| over the dataset and |formula ∧ unit|. */
  readonly F: number;
  readonly I: number;
  readonly iou: number;
  /** Dataset-wide bitset (materialised for the beam only). */
  mask?: Uint32Array;
}

/** Beam search over left-deep formulas for one unit, given its thresholded pixels. */
export function beamSearch(pixels: Int32Array, bank: ConceptBank, maxLength: number, beamSize: number, unit = 0, iouThreshold = 0.04): UnitFormula {
  const C = bank.names.length;
  const nU = pixels.length;
  const score = (I: number, F: number) => ratio(I, nU + F - I);
  // onUnit[c][j]: concept c holds at the unit's j-th pixel.
  const onUnit = bank.names.map(() => new Uint8Array(nU));
  const locate = Array.from(pixels, (g) => {
    const i = Math.floor(g / bank.pixels);
    const p = g - i * bank.pixels;
    return [i * bank.words + (p >> 5), 1 << (p & 31)] as const;
  });
  for (let c = 0; c < C; c++) for (let j = 0; j < nU; j++) onUnit[c][j] = bank.bits[c][locate[j][0]] & locate[j][1] ? 1 : 0;
  const inter = intersections(pixels, bank);
  const singles: Candidate[] = Array.from({ length: C }, (_, c) => ({ leaves: [c], ops: [], F: bank.totals[c], I: inter[c], iou: score(inter[c], bank.totals[c]), mask: bank.bits[c] }));
  const byScore = (a: Candidate, b: Candidate) => b.iou - a.iou || a.leaves.length - b.leaves.length;
  const bestSingle = [...singles].sort(byScore)[0];
  let beam = [...singles].sort(byScore).slice(0, beamSize);
  for (let len = 2; len <= maxLength; len++) {
    const next: Candidate[] = [...beam];
    for (const f of beam) {
      if (f.leaves.length !== len - 1) continue;
      const fMask = f.mask!;
      const fOnUnit = new Uint8Array(nU);
      for (let j = 0; j < nU; j++) fOnUnit[j] = fMask[locate[j][0]] & locate[j][1] ? 1 : 0;
      for (let c = 0; c < C; c++) {
        if (f.leaves.includes(c)) continue;
        const cm = bank.bits[c];
        let both = 0;
        for (let w = 0; w < cm.length; w++) both += popcount32(fMask[w] & cm[w]);
        let Iboth = 0;
        const cu = onUnit[c];
        for (let j = 0; j < nU; j++) Iboth += fOnUnit[j] & cu[j];
        const leaves = [...f.leaves, c];
        const add = (op: Connective, F: number, I: number) => next.push({ leaves, ops: [...f.ops, op], F, I, iou: score(I, F) });
        add('AND', both, Iboth);
        add('OR', f.F + bank.totals[c] - both, f.I + inter[c] - Iboth);
        add('AND NOT', f.F - both, f.I - Iboth);
      }
    }
    // Equal counts over the same concepts are (almost surely) the same formula written twice: keep one.
    const seen = new Set<string>();
    beam = next.sort(byScore).filter((f) => {
      const key = `${f.F}|${f.I}|${[...f.leaves].sort((a, b) => a - b).join(',')}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    }).slice(0, beamSize);
    for (const f of beam) f.mask ??= materialise(f, bank);
  }
  const best = beam[0];
  const formula = best.leaves.reduce((text, c, k) => {
    const name = bank.names[c];
    if (k === 0) return name;
    return `${k > 1 ? `(${text})` : text} ${best.ops[k - 1]} ${name}`;
  }, '');
  return {
    unit,
    formula,
    leaves: best.leaves.map((c) => bank.names[c]),
    ops: best.ops,
    iou: best.iou,
    labelled: best.iou > iouThreshold,
    single: { concept: bank.names[bestSingle.leaves[0]], iou: bestSingle.iou },
    gain: best.iou - bestSingle.iou,
  };
}

/** The dataset-wide bitset of a formula. */
function materialise(f: Candidate, bank: ConceptBank): Uint32Array {
  const out = bank.bits[f.leaves[0]].slice();
  f.ops.forEach((op, k) => {
    const c = bank.bits[f.leaves[k + 1]];
    for (let w = 0; w < out.length; w++) out[w] = op === 'AND' ? out[w] & c[w] : op === 'OR' ? out[w] | c[w] : out[w] & ~c[w];
  });
  return out;
}

/** Concept masks of the whole dataset, packed: concept c's bits of image i start at word i·words of bits[c]. */
export interface ConceptBank {
  readonly names: readonly string[];
  readonly images: number;
  readonly pixels: number;
  /** 32-bit words per image mask. */
  readonly words: number;
  readonly bits: readonly Uint32Array[];
  /** Pixels in each concept over the dataset. */
  readonly totals: Float64Array;
}

/** |U ∩ L_c| for every concept c: U a unit's global pixel list. */
export function intersections(pixels: Int32Array, bank: ConceptBank): Float64Array {
  const out = new Float64Array(bank.names.length);
  for (let j = 0; j < pixels.length; j++) {
    const g = pixels[j];
    const i = Math.floor(g / bank.pixels);
    const p = g - i * bank.pixels;
    const w = i * bank.words + (p >> 5);
    const bit = 1 << (p & 31);
    for (let c = 0; c < out.length; c++) if (bank.bits[c][w] & bit) out[c]++;
  }
  return out;
}

export const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);

export function popcount32(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

export function popcountAll(a: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += popcount32(a[i]);
  return n;
}
