/**
 * Concept datasets for network dissection (Bau et al., "Network Dissection", CVPR 2017): images with a binary pixel
 * mask per concept. Broden cannot be had here, so `conceptDataset` draws its own scenes procedurally (shapes,
 * strokes, textures, colours), and `classRegionConcepts` turns a labelled image dataset (MNIST) into concepts from its
 * own labels ("class 3" = the ink of the 3s) and regions (top half ∩ ink…).
 *
 * Masks are bitsets: one Uint8Array of ⌈H·W/8⌉ bytes per concept per image, pixel p = y·W + x at bit p & 7 of byte
 * p >> 3. Scenes are drawn from the seed and the index alone, so images and masks are rendered on demand and memory
 * stays bounded at any size.
 *
 * @example
 * const concepts = conceptDataset({ size: 500, height: 28, width: 28, channels: 1, seed: 1 });
 * concepts.conceptNames; // ['shape:disc', …, 'colour:bright', …]
 * const m = concepts.masks(0); // one bitset per concept
 */
import { Tensor } from '../../runtime/tensor.js';
import { dataset, type Dataset } from './dataset.js';
import { mixSeed, mulberry32 } from './random.js';

/** What a concept dataset adds to a dataset of images [C, H, W]. */
export interface ConceptSource {
  readonly conceptNames: readonly string[];
  /** [H, W]: the shape of every mask (the images' spatial size). */
  readonly maskShape: readonly [number, number];
  /** The masks of example `index`, one bitset per concept in `conceptNames` order. */
  masks(index: number): readonly Uint8Array[];
}

export type ConceptDataset = Dataset<'float32'> & ConceptSource;

/** A mask bitset from one 0/1 (or boolean-ish) value per pixel. */
export function packMask(bits: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(bits.length / 8));
  for (let p = 0; p < bits.length; p++) if (bits[p]) out[p >> 3] |= 1 << (p & 7);
  return out;
}

/** One 0/1 byte per pixel from a mask bitset of `pixels` pixels. */
export function unpackMask(mask: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let p = 0; p < pixels; p++) out[p] = (mask[p >> 3] >> (p & 7)) & 1;
  return out;
}

/** Pixels set in a mask bitset. */
export function maskCount(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += POPCOUNT8[mask[i]];
  return n;
}

const POPCOUNT8 = Uint8Array.from({ length: 256 }, (_, b) => {
  let n = 0;
  for (let v = b; v; v >>= 1) n += v & 1;
  return n;
});

/** A dataset of images [C, H, W] with concept masks; `masks` is checked (count and byte length) on every call. */
export function withConcepts(ds: Dataset<'float32'>, conceptNames: readonly string[], masks: (index: number) => readonly Uint8Array[]): ConceptDataset {
  const [, h, w] = ds.inputShape;
  if (ds.inputShape.length !== 3) throw new Error(`withConcepts: dataset ${ds.name} has inputs [${ds.inputShape.join(', ')}]; concept masks need images [C, H, W]`);
  if (conceptNames.length === 0) throw new Error(`withConcepts: dataset ${ds.name} has no concepts`);
  const dup = conceptNames.find((n, i) => conceptNames.indexOf(n) !== i);
  if (dup !== undefined) throw new Error(`withConcepts: concept '${dup}' is named twice`);
  const bytes = Math.ceil((h * w) / 8);
  return {
    ...ds,
    conceptNames: Object.freeze([...conceptNames]),
    maskShape: [h, w],
    masks(index: number): readonly Uint8Array[] {
      if (!Number.isInteger(index) || index < 0 || index >= ds.size) throw new Error(`${ds.name}: mask index ${index} out of range [0, ${ds.size})`);
      const m = masks(index);
      if (m.length !== conceptNames.length) throw new Error(`${ds.name}: example ${index} has ${m.length} masks for ${conceptNames.length} concepts`);
      m.forEach((b, c) => {
        if (b.length !== bytes) throw new Error(`${ds.name}: mask '${conceptNames[c]}' of example ${index} has ${b.length} bytes; [${h}, ${w}] masks take ${bytes}`);
      });
      return m;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Procedural scenes

export interface ConceptDatasetSpec {
  readonly size: number;
  /** Image height and width (default 28 × 28; the PaddleOCR classifier takes 48 × 192). */
  readonly height?: number;
  readonly width?: number;
  /** 1: grey (colours are bright/dim); 3: RGB (colours by name). Default 1. */
  readonly channels?: 1 | 3;
  readonly seed?: number;
}

const KINDS = ['disc', 'square', 'triangle', 'line', 'curve'] as const;
const TEXTURES = ['stripes-horizontal', 'stripes-vertical', 'checkerboard', 'dots'] as const;
const ORIENTATIONS = ['horizontal', 'vertical', 'diagonal'] as const;
const RGB: Readonly<Record<string, readonly [number, number, number]>> = {
  red: [1, 0, 0], green: [0, 1, 0], blue: [0, 0, 1], yellow: [1, 1, 0], cyan: [0, 1, 1], magenta: [1, 0, 1], white: [1, 1, 1],
};

type Kind = (typeof KINDS)[number];
interface SceneObject {
  readonly kind: Kind;
  readonly colour: string;
  readonly rgb: readonly [number, number, number];
  readonly texture?: (typeof TEXTURES)[number];
  readonly phase: number;
  readonly orientation?: (typeof ORIENTATIONS)[number];
  readonly thick?: boolean;
  /** Whether the object covers pixel (x, y) (pixel centres at integer + 0.5). */
  readonly covers: (x: number, y: number) => boolean;
}

/** The concept names of a scene dataset with this many channels, in mask order. */
export function sceneConceptNames(channels: 1 | 3): string[] {
  return [
    'shape:disc', 'shape:square', 'shape:triangle',
    ...ORIENTATIONS.map((o) => `stroke:line-${o}`), 'stroke:curve', 'stroke:thin', 'stroke:thick',
    ...TEXTURES.map((t) => `texture:${t}`),
    ...(channels === 1 ? ['colour:bright', 'colour:dim'] : Object.keys(RGB).map((c) => `colour:${c}`)),
    'image:one-object', 'image:three-objects',
  ];
}

/**
 * Procedural scenes: 1–3 objects (disc, square, triangle, line, curve) on a dark noisy background. Shapes are solid or
 * textured (stripes, checkerboard, dots); lines are horizontal, vertical or diagonal; strokes are thin or thick.
 * Masks: `shape:*`, `stroke:*` and `texture:*` cover the visible pixels of the objects that have them (textures as
 * regions, as Broden labels them); `colour:*` covers the visible pixels painted that colour (a texture's off pixels
 * are not); `image:*` are image-level concepts (the whole image). Label y: the kind of the largest visible object.
 */
export function conceptDataset(spec: ConceptDatasetSpec): ConceptDataset {
  const { size, height: h = 28, width: w = 28, channels = 1, seed = 0 } = spec;
  for (const [k, v] of Object.entries({ size, height: h, width: w })) {
    if (!Number.isInteger(v) || v < (k === 'size' ? 0 : 8)) throw new Error(`conceptDataset: ${k} must be an integer ≥ ${k === 'size' ? 0 : 8}, got ${v}`);
  }
  if (channels !== 1 && channels !== 3) throw new Error(`conceptDataset: channels must be 1 or 3, got ${String(channels)}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`conceptDataset: seed must be an integer, got ${seed}`);
  const names = sceneConceptNames(channels);
  const index = new Map(names.map((n, i) => [n, i]));
  const scene = (i: number) => drawScene(mixSeed(seed, i), h, w, channels);

  const base = dataset<'float32'>({
    name: `concepts-${channels === 1 ? 'grey' : 'rgb'}-${h}x${w}-seed${seed}`,
    size,
    inputShape: [channels, h, w],
    inputDType: 'float32',
    numClasses: KINDS.length,
    classNames: KINDS,
    gather(ix) {
      const x = new Float32Array(ix.length * channels * h * w);
      const y = new Array<number>(ix.length);
      ix.forEach((i, b) => {
        const s = scene(i);
        x.set(s.pixels, b * channels * h * w);
        y[b] = s.label;
      });
      return { x: Tensor.float32(x, [ix.length, channels, h, w]), y: Tensor.int64(y, [ix.length]) };
    },
  });
  return withConcepts(base, names, (i) => {
    const s = scene(i);
    const masks = names.map(() => new Uint8Array(Math.ceil((h * w) / 8)));
    const set = (name: string, p: number) => (masks[index.get(name)!][p >> 3] |= 1 << (p & 7));
    const imageLevel = s.objects.length === 1 ? 'image:one-object' : s.objects.length === 3 ? 'image:three-objects' : undefined;
    for (let p = 0; p < h * w; p++) {
      const k = s.owner[p];
      if (imageLevel) set(imageLevel, p);
      if (k < 0) continue;
      const o = s.objects[k];
      if (o.kind === 'line') set(`stroke:line-${o.orientation!}`, p);
      else if (o.kind === 'curve') set('stroke:curve', p);
      else set(`shape:${o.kind}`, p);
      if (o.thick !== undefined) set(o.thick ? 'stroke:thick' : 'stroke:thin', p);
      if (o.texture) set(`texture:${o.texture}`, p);
      if (s.on[p]) set(`colour:${o.colour}`, p);
    }
    return masks;
  });
}

interface Scene {
  readonly pixels: Float32Array;
  /** Index of the visible object at each pixel, −1 for background. */
  readonly owner: Int8Array;
  /** Whether the visible object paints its colour at each pixel (false on a texture's off pixels). */
  readonly on: Uint8Array;
  readonly objects: readonly SceneObject[];
  readonly label: number;
}

function drawScene(seed: number, h: number, w: number, channels: 1 | 3): Scene {
  const r = mulberry32(seed);
  const uni = (a: number, b: number) => a + (b - a) * r();
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const m = Math.min(h, w);
  const unit = Math.max(1, Math.round(m / 28)); // stroke and texture scale
  const period = 4 * unit;
  const objects: SceneObject[] = [];
  const count = 1 + Math.floor(r() * 3);
  for (let k = 0; k < count; k++) {
    const kind = pick(KINDS);
    const [colour, rgb] = channels === 1
      ? r() < 0.5 ? ['bright', grey(uni(0.8, 1))] as const : ['dim', grey(uni(0.35, 0.55))] as const
      : ((c: string) => [c, scale(RGB[c], uni(0.75, 1))] as const)(pick(Object.keys(RGB)));
    const phase = Math.floor(r() * period);
    if (kind === 'line' || kind === 'curve') {
      const thick = r() < 0.5;
      const half = (thick ? 1.5 : 0.5) * unit;
      if (kind === 'line') {
        const orientation = pick(ORIENTATIONS);
        const len = orientation === 'horizontal' ? uni(0.4, 0.8) * w : orientation === 'vertical' ? uni(0.4, 0.8) * h : uni(0.5, 0.9) * m;
        const [dx, dy] = orientation === 'horizontal' ? [1, 0] : orientation === 'vertical' ? [0, 1] : [Math.SQRT1_2, (r() < 0.5 ? 1 : -1) * Math.SQRT1_2];
        const cx = uni(Math.abs(dx) * len / 2, w - Math.abs(dx) * len / 2);
        const cy = uni(Math.abs(dy) * len / 2, h - Math.abs(dy) * len / 2);
        const covers = (x: number, y: number) => {
          const t = Math.max(-len / 2, Math.min(len / 2, (x - cx) * dx + (y - cy) * dy));
          return Math.hypot(x - cx - t * dx, y - cy - t * dy) <= half;
        };
        objects.push({ kind, colour, rgb, phase, orientation, thick, covers });
      } else {
        const rad = uni(0.2, 0.35) * m;
        const [cx, cy, a0] = [uni(rad, w - rad), uni(rad, h - rad), uni(0, 2 * Math.PI)];
        const covers = (x: number, y: number) => {
          const d = Math.hypot(x - cx, y - cy);
          const a = (Math.atan2(y - cy, x - cx) - a0 + 4 * Math.PI) % (2 * Math.PI);
          return Math.abs(d - rad) <= half && a <= Math.PI; // a half circle
        };
        objects.push({ kind, colour, rgb, phase, thick, covers });
      }
      continue;
    }
    const s = uni(0.15, 0.3) * m;
    const [cx, cy] = [uni(s, w - s), uni(s, h - s)];
    const texture = r() < 0.5 ? undefined : pick(TEXTURES);
    const covers = kind === 'disc'
      ? (x: number, y: number) => Math.hypot(x - cx, y - cy) <= s
      : kind === 'square'
        ? (x: number, y: number) => Math.abs(x - cx) <= s && Math.abs(y - cy) <= s
        : (x: number, y: number) => y >= cy - s && y <= cy + s && Math.abs(x - cx) <= (s * (y - cy + s)) / (2 * s); // apex up
    objects.push({ kind, colour, rgb, phase, texture, covers });
  }

  const owner = new Int8Array(h * w).fill(-1);
  const on = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = y * w + x;
      objects.forEach((o, k) => {
        if (!o.covers(x + 0.5, y + 0.5)) return;
        owner[p] = k;
        on[p] = o.texture ? textureOn(o.texture, x + o.phase, y + o.phase, period) : 1;
      });
    }
  }
  const bg = channels === 1 ? grey(uni(0.02, 0.15)) : ([uni(0.02, 0.15), uni(0.02, 0.15), uni(0.02, 0.15)] as const);
  const pixels = new Float32Array(channels * h * w);
  const visible = new Array<number>(objects.length).fill(0);
  for (let p = 0; p < h * w; p++) {
    const k = owner[p];
    if (k >= 0) visible[k]++;
    for (let c = 0; c < channels; c++) {
      const v = k < 0 ? bg[c] : on[p] ? objects[k].rgb[c] : 0.25 * objects[k].rgb[c];
      pixels[c * h * w + p] = Math.min(1, Math.max(0, v + uni(-0.02, 0.02)));
    }
  }
  const largest = visible.indexOf(Math.max(...visible));
  return { pixels, owner, on, objects, label: KINDS.indexOf(objects[largest].kind) };
}

function textureOn(t: (typeof TEXTURES)[number], x: number, y: number, period: number): number {
  const half = period / 2;
  const [bx, by] = [Math.floor(x / half) % 2, Math.floor(y / half) % 2];
  switch (t) {
    case 'stripes-horizontal': return by === 0 ? 1 : 0;
    case 'stripes-vertical': return bx === 0 ? 1 : 0;
    case 'checkerboard': return bx === by ? 1 : 0;
    case 'dots': return bx === 0 && by === 0 ? 1 : 0;
  }
}

const grey = (v: number) => [v, v, v] as const;
const scale = (c: readonly [number, number, number], s: number) => [c[0] * s, c[1] * s, c[2] * s] as const;

// ---------------------------------------------------------------------------------------------------------------
// Concepts from a labelled dataset's own classes and regions

export interface ClassRegionOptions {
  /** A pixel is ink where the mean over channels exceeds this (default 0.5). */
  readonly ink?: number;
  /**
   * Grow the ink by this many pixels (a (2r+1)² square dilation) before masking (default 0): the digit as an object
   * region, as Broden's object masks cover whole objects, rather than only its strokes.
   */
  readonly dilate?: number;
}

/**
 * Concepts of a labelled image dataset (MNIST) from its labels and regions: `class:<name>` = the ink pixels of the
 * images of that class (empty on other images), `region:top|bottom|left|right` = the ink in that half,
 * `region:centre` = the ink in the central box (the middle half of each axis), `ink` = all ink. Ink: pixels whose
 * mean over channels exceeds `ink` (0.5), optionally dilated.
 */
export function classRegionConcepts(ds: Dataset<'float32'>, options: ClassRegionOptions = {}): ConceptDataset {
  const threshold = options.ink ?? 0.5;
  if (!Number.isFinite(threshold)) throw new Error(`classRegionConcepts: ink threshold must be a number, got ${threshold}`);
  const r = options.dilate ?? 0;
  if (!Number.isInteger(r) || r < 0) throw new Error(`classRegionConcepts: dilate must be a non-negative integer, got ${r}`);
  if (ds.inputShape.length !== 3) throw new Error(`classRegionConcepts: dataset ${ds.name} has inputs [${ds.inputShape.join(', ')}]; it needs images [C, H, W]`);
  const labels = ds.labels;
  if (labels === undefined) throw new Error(`classRegionConcepts: dataset ${ds.name} has no class labels`);
  const classes = ds.classNames ?? Array.from({ length: ds.numClasses ?? Math.max(...Array.from(labels)) + 1 }, (_, i) => String(i));
  const [c, h, w] = ds.inputShape;
  const regions: readonly [string, (x: number, y: number) => boolean][] = [
    ['region:top', (_, y) => y < h / 2],
    ['region:bottom', (_, y) => y >= h / 2],
    ['region:left', (x) => x < w / 2],
    ['region:right', (x) => x >= w / 2],
    ['region:centre', (x, y) => x >= w / 4 && x < (3 * w) / 4 && y >= h / 4 && y < (3 * h) / 4],
  ];
  const names = [...classes.map((n) => `class:${n}`), ...regions.map(([n]) => n), 'ink'];
  return withConcepts(ds, names, (i) => {
    const x = ds.gather([i]).x.data;
    const ink = new Uint8Array(h * w);
    for (let p = 0; p < h * w; p++) {
      let v = 0;
      for (let ch = 0; ch < c; ch++) v += x[ch * h * w + p];
      if (v / c <= threshold) continue;
      const [py, px] = [Math.floor(p / w), p % w];
      for (let y = Math.max(0, py - r); y <= Math.min(h - 1, py + r); y++) for (let xx = Math.max(0, px - r); xx <= Math.min(w - 1, px + r); xx++) ink[y * w + xx] = 1;
    }
    const masks = names.map(() => new Uint8Array(Math.ceil((h * w) / 8)));
    const set = (k: number, p: number) => (masks[k][p >> 3] |= 1 << (p & 7));
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        const p = y * w + xx;
        if (!ink[p]) continue;
        set(labels[i], p);
        regions.forEach(([, inside], k) => inside(xx, y) && set(classes.length + k, p));
        set(names.length - 1, p);
      }
    }
    return masks;
  });
}
