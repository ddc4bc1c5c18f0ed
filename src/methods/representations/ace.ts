/**
 * ACE: automatic concept-based explanations (Ghorbani, Wexler, Zou, Kim, "Towards Automatic Concept-based
 * Explanations", NeurIPS 2019). Segment images of a class into superpixels (SLIC), crop each segment to its bounding
 * box with the rest filled grey and resize it to the input size, take the site's activations of those patches,
 * cluster them with k-means, drop small clusters and clusters drawn from too few images, keep each cluster's segments
 * nearest its centre as the concept's examples, and score every discovered concept with TCAV against random sets.
 *
 * @example
 * const r = await ace(model, { site: 'c2.relu', inputs: threes, target: 3, randoms, clusters: 6, seed: 1 });
 * r.concepts.map((c) => [c.cluster, c.tcav.mean, c.tcav.significant]);
 */
import { Tensor } from '../../runtime/tensor.js';
import type { Model } from '../../model/model.js';
import type { Check } from '../attribution/explanation.js';
import { kmeans } from '../attribution/global/kmeans.js';
import { superpixels } from '../attribution/perturbation/masks.js';
import { checkExamples, siteActivations, targetGradients, tcavFromActivations, type Activations, type Examples, type TcavResult, type TcavScore } from './tcav.js';

export interface AceOptions {
  readonly site: string;
  /** Images [N, C, H, W] of the class explained: segmented for concepts, and the inputs of the TCAV scores. */
  readonly inputs: Examples;
  readonly target: number;
  /** The target's score differentiated (default 'log-probability'; see `TcavScore`). */
  readonly score?: TcavScore;
  /** Random counter-sets for TCAV (at least 2; the paper uses ≥ 10). */
  readonly randoms: readonly Examples[];
  /** k of k-means (default 8). */
  readonly clusters?: number;
  /** SLIC superpixels per image (default 15) and compactness (default 10). */
  readonly segments?: number;
  readonly compactness?: number;
  /** Segments smaller than this many pixels are dropped (default 1% of the image). */
  readonly minPixels?: number;
  /** Clusters with fewer members are dropped (default 5). */
  readonly minClusterSize?: number;
  /** Clusters whose segments come from fewer images are dropped (default 2). */
  readonly minImages?: number;
  /** Segments kept per concept, nearest the centre first (default 40, the paper's). */
  readonly maxExamples?: number;
  /** Value of the pixels outside a segment in its patch (default 0.5, the paper's grey on [0, 1] images). */
  readonly fill?: number;
  readonly seed?: number;
  readonly l2?: number;
  readonly alpha?: number;
}

/** One segment of one image: its id in that image's segmentation and its bounding box [y0, x0, y1, x1) . */
export interface AceSegment {
  readonly image: number;
  readonly segment: number;
  readonly pixels: number;
  readonly box: readonly [number, number, number, number];
}

export interface AceConcept {
  readonly cluster: number;
  /** Members of the cluster (after dropping) … */
  readonly size: number;
  readonly images: number;
  /** … of which these (indices into `segments`), nearest the centre first, are the concept's examples. */
  readonly examples: readonly number[];
  readonly tcav: Omit<TcavResult, 'ms'>;
}

export interface AceResult {
  readonly method: 'ace';
  readonly site: string;
  readonly target: number;
  /** SLIC segment ids of each input image ([H, W] row-major). */
  readonly segmentation: readonly Int32Array[];
  /** The segments clustered, in order. */
  readonly segments: readonly AceSegment[];
  /** Cluster of each segment. */
  readonly assignments: Int32Array;
  /** Kept clusters, highest TCAV score first. */
  readonly concepts: readonly AceConcept[];
  readonly dropped: readonly { readonly cluster: number; readonly size: number; readonly reason: string }[];
  readonly checks: readonly Check[];
  readonly ms: number;
}

/** The pixels of `segment` cropped to their box, other pixels `fill`, resized (nearest) to H × W: one [C, H, W] patch. */
export function segmentPatch(image: Float32Array, ids: Int32Array, segment: number, c: number, h: number, w: number, box: readonly [number, number, number, number], fill: number): Float32Array {
  const [y0, x0, y1, x1] = box;
  const out = new Float32Array(c * h * w);
  for (let y = 0; y < h; y++) {
    const sy = y0 + Math.min(y1 - y0 - 1, Math.floor(((y + 0.5) * (y1 - y0)) / h));
    for (let x = 0; x < w; x++) {
      const sx = x0 + Math.min(x1 - x0 - 1, Math.floor(((x + 0.5) * (x1 - x0)) / w));
      const p = sy * w + sx;
      for (let ch = 0; ch < c; ch++) out[ch * h * w + y * w + x] = ids[p] === segment ? image[ch * h * w + p] : fill;
    }
  }
  return out;
}

function* imagesOf(x: Examples): Generator<Float32Array> {
  if (x instanceof Tensor) {
    const n = x.shape[0];
    const row = x.size / Math.max(1, n);
    for (let i = 0; i < n; i++) yield (x.data as Float32Array).subarray(i * row, (i + 1) * row);
    return;
  }
  for (const b of x.batches(32)) {
    const row = b.x.size / Math.max(1, b.x.shape[0]);
    for (let i = 0; i < b.x.shape[0]; i++) yield (b.x.data as Float32Array).subarray(i * row, (i + 1) * row);
  }
}

const positiveInt = (v: number, what: string) => {
  if (!Number.isInteger(v) || v < 1) throw new Error(`ace: ${what} must be a positive integer, got ${v}`);
  return v;
};

/** ACE concept discovery for one class at one site, every concept scored with TCAV (Bonferroni over the concepts). */
export async function ace(model: Model, options: AceOptions): Promise<AceResult> {
  const start = performance.now();
  const { site, target } = options;
  model.site(site);
  if (options.randoms.length < 2) throw new Error(`ace: need at least 2 random counter-sets for TCAV, got ${options.randoms.length} (the paper uses ≥ 10)`);
  checkExamples(model, options.inputs, 'ace: inputs');
  options.randoms.forEach((r, k) => checkExamples(model, r, `ace: random set ${k}`));
  const shape = options.inputs instanceof Tensor ? options.inputs.shape.slice(1) : options.inputs.inputShape;
  if (shape.length !== 3) throw new Error(`ace: inputs must be images [N, C, H, W], got examples [${shape.join(', ')}]`);
  const [c, h, w] = shape;
  const k = positiveInt(options.clusters ?? 8, 'clusters');
  const nSeg = positiveInt(options.segments ?? 15, 'segments');
  const minPixels = options.minPixels ?? Math.max(1, Math.round((h * w) / 100));
  const minClusterSize = positiveInt(options.minClusterSize ?? 5, 'minClusterSize');
  const minImages = positiveInt(options.minImages ?? 2, 'minImages');
  const maxExamples = positiveInt(options.maxExamples ?? 40, 'maxExamples');
  const fill = options.fill ?? 0.5;
  if (!Number.isFinite(fill)) throw new Error(`ace: fill must be a finite number, got ${fill}`);
  const seed = options.seed ?? 0;

  // Segment every image and turn each large-enough segment into a patch; activations are taken per image's patches.
  const segmentation: Int32Array[] = [];
  const segments: AceSegment[] = [];
  const rows: Float64Array[] = [];
  let d = -1;
  let image = 0;
  for (const img of imagesOf(options.inputs)) {
    const ids = superpixels(Tensor.float32(Float32Array.from(img), [c, h, w]), { segments: nSeg, compactness: options.compactness }).data as Int32Array;
    const plane = Int32Array.from(ids.subarray(0, h * w));
    segmentation.push(plane);
    const boxes = new Map<number, [number, number, number, number, number]>(); // y0, x0, y1, x1, pixels
    for (let p = 0; p < h * w; p++) {
      const [y, x] = [Math.floor(p / w), p % w];
      const b = boxes.get(plane[p]);
      if (!b) boxes.set(plane[p], [y, x, y + 1, x + 1, 1]);
      else [b[0], b[1], b[2], b[3], b[4]] = [Math.min(b[0], y), Math.min(b[1], x), Math.max(b[2], y + 1), Math.max(b[3], x + 1), b[4] + 1];
    }
    const kept = [...boxes.entries()].filter(([, b]) => b[4] >= minPixels).sort((a, b) => a[0] - b[0]);
    if (kept.length) {
      const patches = new Float32Array(kept.length * c * h * w);
      kept.forEach(([id, b], i) => {
        const box = [b[0], b[1], b[2], b[3]] as const;
        patches.set(segmentPatch(img, plane, id, c, h, w, box, fill), i * c * h * w);
        segments.push({ image, segment: id, pixels: b[4], box });
      });
      const acts = await siteActivations(model, site, Tensor.float32(patches, [kept.length, c, h, w]));
      d = acts.d;
      rows.push(acts.data);
    }
    image++;
  }
  if (segments.length < k) throw new Error(`ace: ${segments.length} segments of at least ${minPixels} pixels, fewer than the ${k} clusters asked for`);
  const acts = new Float64Array(segments.length * d);
  let o = 0;
  for (const r of rows) {
    acts.set(r, o);
    o += r.length;
  }

  const km = kmeans(acts, segments.length, d, k, { seed });
  const members = Array.from({ length: k }, () => [] as number[]);
  km.assignments.forEach((a, i) => members[a].push(i));
  const dropped: { cluster: number; size: number; reason: string }[] = [];
  const kept: number[] = [];
  members.forEach((m, j) => {
    const imgs = new Set(m.map((i) => segments[i].image)).size;
    if (m.length < minClusterSize) dropped.push({ cluster: j, size: m.length, reason: `fewer than ${minClusterSize} segments` });
    else if (imgs < minImages) dropped.push({ cluster: j, size: m.length, reason: `segments from ${imgs} image(s), fewer than ${minImages}` });
    else kept.push(j);
  });

  const randoms: Activations[] = [];
  for (const r of options.randoms) randoms.push(await siteActivations(model, site, r));
  const grads = await targetGradients(model, site, options.inputs, target, options.score);
  const concepts: AceConcept[] = kept.map((j) => {
    const dist = (i: number) => {
      let s = 0;
      for (let t = 0; t < d; t++) s += (acts[i * d + t] - km.centroids[j * d + t]) ** 2;
      return s;
    };
    const examples = [...members[j]].sort((a, b) => dist(a) - dist(b) || a - b).slice(0, maxExamples);
    const data = new Float64Array(examples.length * d);
    examples.forEach((i, r) => data.set(acts.subarray(i * d, (i + 1) * d), r * d));
    const tcav = tcavFromActivations({ data, n: examples.length, d }, randoms, grads, { site, target, seed, l2: options.l2, alpha: options.alpha, tests: kept.length });
    return { cluster: j, size: members[j].length, images: new Set(members[j].map((i) => segments[i].image)).size, examples, tcav };
  });
  concepts.sort((a, b) => b.tcav.mean - a.tcav.mean || a.cluster - b.cluster);
  const significant = concepts.filter((cn) => cn.tcav.significant);
  return {
    method: 'ace',
    site,
    target,
    segmentation,
    segments,
    assignments: km.assignments,
    concepts,
    dropped,
    checks: [
      { name: 'concepts kept', value: concepts.length, passed: concepts.length > 0, detail: `${k} clusters of ${segments.length} segments from ${image} images; dropped ${dropped.length} (${dropped.map((x) => `#${x.cluster}: ${x.reason}`).join('; ') || 'none'})` },
      { name: 'significant concepts', value: significant.length, detail: `TCAV against ${randoms.length} random sets, Bonferroni over ${concepts.length} concepts: ${significant.map((x) => `#${x.cluster} (${x.tcav.mean.toFixed(2)})`).join(', ') || 'none'}` },
      { name: 'cav held-out accuracy', value: concepts.map((x) => x.tcav.cavAccuracies.reduce((s, v) => s + v, 0) / x.tcav.cavAccuracies.length), detail: 'mean held-out accuracy of each concept\'s CAVs' },
    ],
    ms: performance.now() - start,
  };
}
