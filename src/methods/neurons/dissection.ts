/**
 * Network dissection (Bau, Zhou, Khosla, Oliva, Torralba, "Network Dissection: Quantifying Interpretability of Deep
 * Visual Representations", CVPR 2017): each channel k of a conv site is a unit; its threshold T_k is the top-`quantile`
 * (default 0.5%) value of its activations over all images and positions; its activation map, upsampled bilinearly to
 * the input size, is thresholded (S_k > T_k) and compared with every concept mask by the dataset IoU
 * Σ|S_k ∩ L_c| / Σ|S_k ∪ L_c|. The unit's label is its best concept where that IoU exceeds 0.04.
 *
 * A label is a hypothesis, tested against two baselines. (1) Random units: the same site's channels in a copy of the
 * model with every layer re-initialised (evaluate/sanity/reinit: truncated normal at each weight's RMS) — Bau et al.'s
 * untrained network; a unit's label counts as evidence only if its IoU beats the 95th percentile of those channels'
 * IoU with the same concept (a model whose weights are Constant nodes, as PaddleOCR's, cannot be re-initialised there:
 * the per-unit baseline then falls back to the random directions). (2) Random directions of the site (unit vectors in channel space, rows of a random
 * orthogonal matrix when there are no more than channels — Bau et al. §3.2's rotation), compared layer-wide: the
 * fraction of labelled units and unique concepts. Directions are mixtures, so where a few channels dominate the top
 * activations a random direction inherits their labels; the rotation is a layer-level check, not a per-unit one.
 *
 * T_k is exact: a bounded buffer keeps only the top ⌈q·N·h·w⌉ values of each unit. Activations are streamed in two
 * passes (thresholds, then masks); the concept masks are held packed (N · concepts · H·W / 8 bytes) and each unit's
 * thresholded pixels as a list (about q of the upsampled pixels). A site of rank other than 4 ([N, C]: a dense layer)
 * is refused: its units have no spatial map to compare with a mask.
 *
 * @example
 * const concepts = conceptDataset({ size: 300, seed: 1 });
 * const d = await dissect(model, 'c2.conv', concepts, { randomUnits: 16 });
 * d.units[0]; // { unit: 0, label: 'texture:stripes-horizontal', iou: 0.21, randomIoU: 0.02, beatsRandom: true, … }
 */
import type { ConceptDataset } from '../../data/datasets/concepts.js';
import { mulberry32 } from '../../data/datasets/random.js';
import { parameterLayers, randomizedCopy } from '../../evaluate/sanity/reinit.js';
import type { Model } from '../../model/model.js';
import type { Tensor } from '../../runtime/tensor.js';
import { unknownNameError } from '../../util/nearest.js';
import type { Check } from '../attribution/explanation.js';
import { passiveHidden, RAUKER, type MethodInfo, type Taxonomy } from '../taxonomy.js';
import { explainCompositional, intersections, popcountAll, ratio, type ConceptBank } from './compositional.js';

export interface DissectOptions {
  /** Fraction of each unit's activations above its threshold (default 0.005: the top 0.5%). */
  readonly quantile?: number;
  /** IoU a concept must exceed to label a unit (default 0.04). */
  readonly iouThreshold?: number;
  readonly batchSize?: number;
  /** Random directions of the site scored as a baseline (default 32; 0 for none). */
  readonly randomUnits?: number;
  /** Also dissect the same site of a re-initialised copy of the model, the per-unit baseline (default true). */
  readonly randomInit?: boolean;
  readonly seed?: number;
  /** Concepts listed per unit (default 3). */
  readonly top?: number;
  /** The model input fed with the images (default the first). */
  readonly input?: string;
}

export interface ConceptScore {
  readonly concept: string;
  readonly iou: number;
}

export interface UnitLabel {
  /** Channel index (or random direction index in `random`). */
  readonly unit: number;
  readonly threshold: number;
  /** Pixels of the thresholded, upsampled mask over the dataset, Σ|S_k > T_k|. */
  readonly pixels: number;
  /** The best concept and its IoU, labelled or not. */
  readonly concept: string;
  readonly iou: number;
  /** The best concept where its IoU exceeds the threshold, else null. */
  readonly label: string | null;
  readonly top: readonly ConceptScore[];
  /** 95th percentile of the random-init channels' (else random directions') IoU with `concept`; NaN without either. */
  readonly randomIoU: number;
  /** Labelled and above `randomIoU` (null without a baseline, and for the baseline's own units). */
  readonly beatsRandom: boolean | null;
}

export interface Dissection {
  readonly method: 'network-dissection';
  readonly taxonomy: Taxonomy;
  readonly site: string;
  readonly concepts: readonly string[];
  /** Pixels of each concept over the dataset (IoU ≤ min(|U|, |L_c|) / max(|U|, |L_c|)). */
  readonly conceptPixels: Float64Array;
  readonly units: readonly UnitLabel[];
  /** The same scores for the random directions of the site. */
  readonly random: readonly UnitLabel[];
  /** The same scores for the site's channels in a re-initialised copy of the model (empty with randomInit: false). */
  readonly randomInit: readonly UnitLabel[];
  readonly labelledFraction: number;
  readonly randomLabelledFraction: number;
  readonly randomInitLabelledFraction: number;
  /** IoU of every unit with every concept, [units × concepts] row-major. */
  readonly iou: Float64Array;
  readonly checks: readonly Check[];
  readonly params: Readonly<Record<string, unknown>>;
  readonly ms: number;
}

/** What both passes produce: each unit's thresholded, upsampled pixels over the dataset. */
export interface UnitMasks {
  readonly site: string;
  /** Channels of the site; units K… are the random directions. */
  readonly channels: number;
  readonly randomUnits: number;
  readonly thresholds: Float64Array;
  /** Per unit, the global pixels (image · H·W + y·W + x) with S > T, ascending. */
  readonly pixels: readonly Int32Array[];
  /** Per unit, the fraction of its raw activations above its threshold (≤ quantile). */
  readonly above: Float64Array;
  readonly bank: ConceptBank;
  readonly params: Readonly<Record<string, unknown>>;
}

/** Bau et al.'s dissection of every channel of a conv site [N, C, h, w] against the concepts' masks. */
export async function dissect(model: Model, site: string, concepts: ConceptDataset, options: DissectOptions = {}): Promise<Dissection> {
  const t0 = performance.now();
  const iouThreshold = options.iouThreshold ?? 0.04;
  if (!(iouThreshold >= 0 && iouThreshold < 1)) throw new Error(`dissect: iouThreshold must be in [0, 1), got ${iouThreshold}`);
  const top = options.top ?? 3;
  if (!Number.isInteger(top) || top < 1) throw new Error(`dissect: top must be a positive integer, got ${top}`);
  const randomInit = options.randomInit ?? true;
  const um = await unitMasks(model, site, concepts, options);
  const { bank, channels: K, randomUnits: R } = um;
  const C = bank.names.length;
  const iou = iouTable(um);
  let init: Float64Array | undefined;
  let initThresholds: Float64Array = new Float64Array(0);
  let initPixels: readonly Int32Array[] = [];
  // Weights stored as Constant nodes (PaddleOCR's export) are not re-initialisable: fall back to random directions.
  const layers = parameterLayers(model).map((l) => l.name);
  if (randomInit && layers.length > 0) {
    const copy = await randomizedCopy(model, layers, options.seed ?? 0);
    try {
      const ur = await unitMasks(copy, site, concepts, { ...options, randomUnits: 0 });
      [init, initThresholds, initPixels] = [iouTable(ur), ur.thresholds, ur.pixels];
    } finally {
      await copy.dispose();
    }
  }
  // The per-unit baseline: 95th percentile (nearest rank) of the random-init channels' IoU with each concept (or of
  // the random directions' without a random-init network).
  const pool = init ?? (R > 0 ? iou.subarray(K * C) : undefined);
  const randomIoU = Array.from({ length: C }, (_, c) => {
    if (!pool) return NaN;
    const v = Array.from({ length: pool.length / C }, (_, r) => pool[r * C + c]).sort((a, b) => a - b);
    return v[Math.ceil(0.95 * v.length) - 1];
  });
  const label = (table: Float64Array, thresholds: Float64Array, pixels: readonly Int32Array[], u: number, unit: number, baseline: boolean): UnitLabel => {
    const order = Array.from({ length: C }, (_, c) => c).sort((a, b) => table[u * C + b] - table[u * C + a] || a - b);
    const best = order[0];
    const score = table[u * C + best];
    const labelled = score > iouThreshold;
    return {
      unit,
      threshold: thresholds[u],
      pixels: pixels[u].length,
      concept: bank.names[best],
      iou: score,
      label: labelled ? bank.names[best] : null,
      top: order.slice(0, top).map((c) => ({ concept: bank.names[c], iou: table[u * C + c] })),
      randomIoU: randomIoU[best],
      beatsRandom: !baseline || !pool ? null : labelled && score > randomIoU[best],
    };
  };
  const units = Array.from({ length: K }, (_, k) => label(iou, um.thresholds, um.pixels, k, k, true));
  const random = Array.from({ length: R }, (_, r) => label(iou, um.thresholds, um.pixels, K + r, r, false));
  const randomInitUnits = init ? Array.from({ length: K }, (_, k) => label(init!, initThresholds, initPixels, k, k, false)) : [];
  const fraction = (ls: readonly UnitLabel[]) => (ls.length ? ls.filter((l) => l.label !== null).length / ls.length : NaN);
  const unique = (ls: readonly UnitLabel[]) => new Set(ls.flatMap((l) => (l.label === null ? [] : [l.label]))).size;
  const [labelledFraction, randomLabelledFraction, initLabelledFraction] = [fraction(units), fraction(random), fraction(randomInitUnits)];
  const beating = units.filter((u) => u.beatsRandom).length;
  const q = um.params.quantile as number;
  const maxAbove = Math.max(...um.above);
  const empty = bank.names.filter((_, c) => bank.totals[c] === 0);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const checks: Check[] = [
    {
      name: 'labelled fraction vs random directions',
      value: labelledFraction,
      passed: R === 0 ? undefined : labelledFraction > randomLabelledFraction,
      detail: `${pct(labelledFraction)} of ${K} units (${unique(units)} unique concepts) have a concept with IoU > ${iouThreshold}; ${R === 0 ? 'no random directions' : `${pct(randomLabelledFraction)} of ${R} random directions do (${unique(random)} unique; Bau et al. §3.2 rotation)`}`,
    },
    {
      name: 'labelled fraction vs random-init network',
      value: labelledFraction,
      passed: init ? labelledFraction > initLabelledFraction : undefined,
      detail: init
        ? `${pct(labelledFraction)} of units labelled; ${pct(initLabelledFraction)} of the same site's ${K} channels in a re-initialised copy (${unique(randomInitUnits)} unique concepts)`
        : randomInit ? 'no random-init network: the model has no float32 initializers to re-initialise' : 'no random-init network (randomInit: false)',
    },
    {
      name: 'labels beating the random baseline',
      value: beating,
      passed: pool ? beating > 0 : undefined,
      detail: `${beating} of ${K} units are labelled with an IoU above the 95th percentile of ${init ? `the ${K} random-init channels'` : `${R} random directions'`} IoU with the same concept`,
    },
    {
      name: 'threshold quantile',
      value: maxAbove,
      passed: maxAbove <= q,
      detail: `exact thresholds: at most ${(100 * maxAbove).toFixed(3)}% of any unit's raw activations exceed T_k (quantile ${q})`,
    },
    {
      name: 'empty concepts',
      value: empty.length,
      detail: empty.length ? `never present in these images, so never a label: ${empty.join(', ')}` : 'every concept occurs in the dataset',
    },
  ];
  return {
    method: 'network-dissection',
    taxonomy: DISSECTION_METHODS['network-dissection'].info.taxonomy,
    site,
    concepts: bank.names,
    conceptPixels: bank.totals,
    units,
    random,
    randomInit: randomInitUnits,
    labelledFraction,
    randomLabelledFraction,
    randomInitLabelledFraction: initLabelledFraction,
    iou: iou.slice(0, K * C),
    checks,
    params: { ...um.params, iouThreshold, top, randomInit },
    ms: performance.now() - t0,
  };
}

/** IoU of every unit (channels, then random directions) with every concept, [units × concepts]. */
function iouTable(um: UnitMasks): Float64Array {
  const { bank } = um;
  const C = bank.names.length;
  const iou = new Float64Array(um.pixels.length * C);
  um.pixels.forEach((px, u) => {
    const inter = intersections(px, bank);
    for (let c = 0; c < C; c++) iou[u * C + c] = ratio(inter[c], px.length + bank.totals[c] - inter[c]);
  });
  return iou;
}

/**
 * The two streaming passes: exact top-quantile thresholds per unit (channels, then random directions), then each
 * unit's map upsampled bilinearly (half-pixel centres, as PIL and align_corners=false) to the masks' size and
 * thresholded S > T. Also packs the concept masks. Shared with compositional explanations.
 */
export async function unitMasks(model: Model, site: string, concepts: ConceptDataset, options: DissectOptions = {}): Promise<UnitMasks> {
  const { quantile = 0.005, batchSize = 32, randomUnits = 32, seed = 0 } = options;
  if (!(quantile > 0 && quantile < 1)) throw new Error(`dissect: quantile must be in (0, 1), got ${quantile}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`dissect: batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(randomUnits) || randomUnits < 0) throw new Error(`dissect: randomUnits must be a non-negative integer, got ${randomUnits}`);
  const s = model.site(site); // an unknown name lists the nearest ones
  if (s.shape && s.shape.length !== 4) {
    throw new Error(`dissect: site '${site}' has shape [${s.shape.join(', ')}] (rank ${s.shape.length}); dissection needs a convolutional site [N, C, H, W] whose units are channels with spatial maps`);
  }
  const input = options.input ?? model.inputs[0]?.name;
  const inputNames = model.inputs.map((i) => i.name);
  if (input === undefined || !inputNames.includes(input)) throw unknownNameError('input', String(input), inputNames);
  const N = concepts.size;
  if (N === 0) throw new Error(`dissect: concept dataset ${concepts.name} is empty`);
  const [H, W] = concepts.maskShape;
  const [, ih, iw] = concepts.inputShape;
  if (ih !== H || iw !== W) throw new Error(`dissect: concept masks are [${H}, ${W}] but the images of ${concepts.name} are [${ih}, ${iw}]`);
  if (N * H * W > 2 ** 31 - 1) throw new Error(`dissect: ${N} images of ${H}×${W} exceed the 2³¹ pixels a unit's mask can index; dissect a subset`);
  const names = concepts.conceptNames;

  let K = -1;
  let hw = 0;
  let geometry: [number, number] = [0, 0];
  let directions: Float32Array = new Float32Array(0);
  let tops: TopValues[] = [];
  const capture = async (x: Tensor) => {
    const a = (await model.run({ [input]: x }, { capture: [site] })).captures[site];
    if (a.shape.length !== 4) throw new Error(`dissect: site '${site}' has shape [${a.shape.join(', ')}] (rank ${a.shape.length}); dissection needs a convolutional site [N, C, H, W] whose units are channels with spatial maps`);
    if (a.dtype !== 'float32') throw new Error(`dissect: site '${site}' is ${a.dtype}; dissection needs float32 activations`);
    return { data: a.data as Float32Array, shape: a.shape };
  };
  const maps = (data: Float32Array, b: number): Float32Array[] => {
    const out: Float32Array[] = [];
    for (let k = 0; k < K; k++) out.push(data.subarray((b * K + k) * hw, (b * K + k + 1) * hw));
    for (let r = 0; r < randomUnits; r++) {
      const m = new Float32Array(hw);
      for (let k = 0; k < K; k++) {
        const d = directions[r * K + k];
        const a = out[k];
        for (let p = 0; p < hw; p++) m[p] += d * a[p];
      }
      out.push(m);
    }
    return out;
  };

  // Pass 1: exact thresholds.
  for (const { x } of concepts.batches(batchSize)) {
    const { data, shape } = await capture(x);
    if (K < 0) {
      K = shape[1];
      geometry = [shape[2], shape[3]];
      hw = shape[2] * shape[3];
      directions = randomDirections(randomUnits, K, seed);
      const m = Math.max(1, Math.ceil(quantile * N * hw));
      tops = Array.from({ length: K + randomUnits }, () => new TopValues(m));
    }
    for (let b = 0; b < shape[0]; b++) {
      maps(data, b).forEach((m, u) => {
        for (let p = 0; p < hw; p++) {
          if (Number.isNaN(m[p])) throw new Error(`dissect: site '${site}' has NaN activations (unit ${u}, ${concepts.name})`);
          tops[u].push(m[p]);
        }
      });
    }
  }
  const thresholds = Float64Array.from(tops, (t) => t.value());

  // Pass 2: upsampled, thresholded maps; concept masks packed.
  const P = H * W;
  const words = Math.ceil(P / 32);
  const bits = names.map(() => new Uint32Array(N * words));
  const lists = Array.from(thresholds, () => [] as number[]);
  const above = new Float64Array(thresholds.length);
  const up = bilinear(geometry, [H, W]);
  const S = new Float32Array(P);
  for (const { x, indices } of concepts.batches(batchSize)) {
    const { data, shape } = await capture(x);
    for (let b = 0; b < shape[0]; b++) {
      const i = indices[b];
      concepts.masks(i).forEach((m, c) => {
        for (let j = 0; j < m.length; j++) bits[c][i * words + (j >> 2)] |= m[j] << (8 * (j & 3));
      });
      maps(data, b).forEach((m, u) => {
        const T = thresholds[u];
        let max = -Infinity;
        for (let p = 0; p < hw; p++) {
          if (m[p] > T) above[u]++;
          if (m[p] > max) max = m[p];
        }
        if (max <= T) return; // bilinear values are convex combinations: none can exceed T
        up(m, S);
        for (let p = 0; p < P; p++) if (S[p] > T) lists[u].push(i * P + p);
      });
    }
  }
  const totals = Float64Array.from(bits, popcountAll);
  return {
    site,
    channels: K,
    randomUnits,
    thresholds,
    pixels: lists.map((l) => Int32Array.from(l).sort()),
    above: above.map((a) => a / (N * hw)),
    bank: { names, images: N, pixels: P, words, bits, totals },
    params: { quantile, batchSize, randomUnits, seed, input, images: N, siteShape: [K, ...geometry], maskShape: [H, W], thresholds: 'exact' },
  };
}

/** The largest m values seen, kept exactly in a buffer of at most 4m; `value()` is the m-th largest. */
class TopValues {
  private buf: Float32Array;
  private len = 0;
  private cutoff = -Infinity;
  constructor(private readonly m: number) {
    this.buf = new Float32Array(4 * m);
  }
  push(v: number): void {
    // A value not above the m-th largest kept so far can no longer change the m-th largest.
    if (v <= this.cutoff) return;
    this.buf[this.len++] = v;
    if (this.len === this.buf.length) this.compact();
  }
  private compact(): void {
    this.buf.subarray(0, this.len).sort();
    const keep = Math.min(this.m, this.len);
    this.buf.copyWithin(0, this.len - keep, this.len);
    this.len = keep;
    if (keep === this.m) this.cutoff = this.buf[0];
  }
  value(): number {
    this.compact();
    return this.buf[0];
  }
}

/** R unit vectors in K dimensions: rows of a random orthogonal matrix when R ≤ K (Gram–Schmidt), else Gaussian. */
export function randomDirections(R: number, K: number, seed: number): Float32Array<ArrayBuffer> {
  const rand = mulberry32(seed ^ 0x5eed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const out = new Float32Array(R * K);
  for (let r = 0; r < R; r++) {
    const v = Array.from({ length: K }, gauss);
    if (r < K) {
      for (let q = 0; q < r; q++) {
        let dot = 0;
        for (let k = 0; k < K; k++) dot += v[k] * out[q * K + k];
        for (let k = 0; k < K; k++) v[k] -= dot * out[q * K + k];
      }
    }
    const norm = Math.hypot(...v) || 1;
    for (let k = 0; k < K; k++) out[r * K + k] = v[k] / norm;
  }
  return out;
}

/** Bilinear resize [h, w] → [H, W] with half-pixel centres, clamped at the borders. */
export function bilinear([h, w]: readonly [number, number], [H, W]: readonly [number, number]): (src: Float32Array, dst: Float32Array) => void {
  const axis = (n: number, N: number) => {
    const i0 = new Int32Array(N);
    const i1 = new Int32Array(N);
    const f = new Float32Array(N);
    for (let d = 0; d < N; d++) {
      const s = Math.min(n - 1, Math.max(0, ((d + 0.5) * n) / N - 0.5));
      i0[d] = Math.floor(s);
      i1[d] = Math.min(n - 1, i0[d] + 1);
      f[d] = s - i0[d];
    }
    return { i0, i1, f };
  };
  const ry = axis(h, H);
  const rx = axis(w, W);
  return (src, dst) => {
    for (let y = 0; y < H; y++) {
      const [a, b, fy] = [ry.i0[y] * w, ry.i1[y] * w, ry.f[y]];
      for (let x = 0; x < W; x++) {
        const [c0, c1, fx] = [rx.i0[x], rx.i1[x], rx.f[x]];
        const top = src[a + c0] + (src[a + c1] - src[a + c0]) * fx;
        const bottom = src[b + c0] + (src[b + c1] - src[b + c0]) * fx;
        dst[y * W + x] = top + (bottom - top) * fy;
      }
    }
  };
}

export const DISSECTION_METHODS = {
  'network-dissection': {
    info: {
      title: 'Network dissection',
      reference: 'Bau, Zhou, Khosla, Oliva, Torralba 2017, Network Dissection: Quantifying Interpretability of Deep Visual Representations',
      taxonomy: passiveHidden('global', RAUKER.dissection),
      stochastic: true,
    },
    run: dissect,
  },
  'compositional-explanations': {
    info: {
      title: 'Compositional explanations of neurons',
      reference: 'Mu, Andreas 2020, Compositional Explanations of Neurons',
      taxonomy: passiveHidden('global', RAUKER.dissection),
      stochastic: true,
    },
    run: explainCompositional,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
