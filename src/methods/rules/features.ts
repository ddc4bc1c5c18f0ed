/**
 * The features rules are written in, and how synthetic inputs are drawn around data for querying the network.
 *
 * - Tabular data: the input features themselves, in raw units, with their names (`petal width (cm)`).
 * - Images: the mean intensity ("ink") of each square patch of a grid, a fixed superpixel segmentation
 *   (`patch(r2,c3)`: row 2, column 3 of the grid, 0-based).
 *
 * Every feature owns a group of input values (one feature value; the pixels of one patch). Synthetic inputs are drawn
 * as in Trepan's querying (Craven & Shavlik, "Extracting Tree-Structured Representations of Trained Networks", NIPS
 * 1996), which samples each feature from its marginal distribution: start from a pool example and, with probability
 * `mix`, replace each group by the same group of another pool example, then (tabular) add Gaussian kernel noise of
 * Silverman's bandwidth. Drawn from a node's own examples and filtered by its conditions, these give deep nodes
 * the examples they need.
 *
 * @example
 * const space = patchFeatures([1, 28, 28], 4); // 49 features patch(r0,c0) … patch(r6,c6)
 * space.encode(images); // [B, 49]
 */
import type { Dataset } from '../../data/datasets/dataset.js';
import { Tensor } from '../../runtime/tensor.js';

export interface FeatureSpace {
  readonly kind: 'tabular' | 'patches';
  readonly names: readonly string[];
  /** Shape of one model input (no batch axis). */
  readonly inputShape: readonly number[];
  /** Features of inputs [B, ...inputShape], row-major [B, F]. */
  encode(x: Tensor<'float32'>): Float32Array;
  /** Positions (within one input) of the values feature f is made of. */
  group(f: number): Int32Array;
  /** Default kernel noise, as a multiple of Silverman's bandwidth (tabular 0.3, patches 0). */
  readonly bandwidth: number;
  /** Range the input values are kept in after noise ([0, 1] for images). */
  readonly range?: readonly [number, number];
}

/** Named features read straight from a rank-1 input. */
export function tabularFeatures(names: readonly string[]): FeatureSpace {
  if (names.length === 0) throw new Error('tabularFeatures: no feature names');
  const f = names.length;
  return {
    kind: 'tabular',
    names,
    inputShape: [f],
    encode: (x) => {
      if (x.shape.length !== 2 || x.shape[1] !== f) throw new Error(`tabular features: inputs ${JSON.stringify(x.shape)}, expected [B, ${f}]`);
      return Float32Array.from(x.data);
    },
    group: (k) => Int32Array.of(k),
    bandwidth: 0.3,
  };
}

/** Mean value of each `patch`×`patch` square of a [C, H, W] image (over channels too): (H/patch)·(W/patch) features. */
export function patchFeatures(inputShape: readonly number[], patch: number): FeatureSpace {
  if (inputShape.length !== 3) throw new Error(`patchFeatures: input shape ${JSON.stringify(inputShape)} is not [C, H, W]`);
  const [c, h, w] = inputShape;
  if (!Number.isInteger(patch) || patch < 1 || h % patch !== 0 || w % patch !== 0) {
    throw new Error(`patchFeatures: patch size ${patch} must be a positive integer dividing the image height ${h} and width ${w}`);
  }
  const rows = h / patch;
  const cols = w / patch;
  const names = Array.from({ length: rows * cols }, (_, k) => `patch(r${Math.floor(k / cols)},c${k % cols})`);
  const groups = names.map((_, k) => {
    const r0 = Math.floor(k / cols) * patch;
    const c0 = (k % cols) * patch;
    const ix: number[] = [];
    for (let ch = 0; ch < c; ch++) for (let r = r0; r < r0 + patch; r++) for (let cc = c0; cc < c0 + patch; cc++) ix.push(ch * h * w + r * w + cc);
    return Int32Array.from(ix);
  });
  const per = c * h * w;
  return {
    kind: 'patches',
    names,
    inputShape: [c, h, w],
    encode: (x) => {
      if (x.shape.length !== 4 || x.shape.slice(1).join() !== [c, h, w].join()) {
        throw new Error(`patch features: inputs ${JSON.stringify(x.shape)}, expected [B, ${c}, ${h}, ${w}]`);
      }
      const b = x.shape[0];
      const out = new Float32Array(b * names.length); // [B, F]
      for (let i = 0; i < b; i++) {
        for (let k = 0; k < groups.length; k++) {
          let s = 0;
          for (const p of groups[k]) s += x.data[i * per + p];
          out[i * names.length + k] = s / groups[k].length;
        }
      }
      return out;
    },
    group: (k) => groups[k],
    bandwidth: 0,
    range: [0, 1],
  };
}

/** The feature space a dataset's rules are written in: named tabular features, or patches of `patch` pixels. */
export function featureSpaceOf(ds: Dataset, patch = 4): FeatureSpace {
  if (ds.inputDType !== 'float32') throw new Error(`rules: ${ds.name} has ${ds.inputDType} inputs; rule extraction needs float32 features or images`);
  if (ds.inputShape.length === 1) {
    const f = ds.inputShape[0];
    return tabularFeatures(ds.featureNames ?? Array.from({ length: f }, (_, i) => `x${i}`));
  }
  if (ds.inputShape.length === 3) return patchFeatures(ds.inputShape, patch);
  throw new Error(`rules: ${ds.name} has inputs of shape ${JSON.stringify(ds.inputShape)}; expected [F] features or [C, H, W] images`);
}

/** Default probability that a feature is redrawn from another example when sampling around the data. */
export const DEFAULT_MIX = 0.25;

export interface SampleOptions {
  /** Probability that each feature's group is redrawn from another pool example (default 0.25; 1: independent marginals). */
  readonly mix?: number;
  /** Kernel noise as a multiple of Silverman's bandwidth 1.06·σ·n^(−1/5) per input value (default: the space's). */
  readonly bandwidth?: number;
}

/**
 * `count` synthetic inputs [count, ...inputShape] drawn around the pool's inputs (`pool` row-major [P, D]): see the
 * module comment. Deterministic given `rand`.
 */
export function sampleAround(space: FeatureSpace, pool: Float32Array, count: number, rand: () => number, options: SampleOptions = {}): Tensor<'float32'> {
  const d = space.inputShape.reduce((a, b) => a * b, 1);
  const p = pool.length / d;
  const { mix = DEFAULT_MIX, bandwidth = space.bandwidth } = options;
  if (!Number.isInteger(p) || p < 1) throw new Error(`sampleAround: a pool of ${pool.length} values is not whole inputs of ${d} values`);
  if (!(mix >= 0 && mix <= 1)) throw new Error(`sampleAround: mix must be in [0, 1], got ${mix}`);
  if (!(bandwidth >= 0) || !Number.isFinite(bandwidth)) throw new Error(`sampleAround: bandwidth must be a finite number ≥ 0, got ${bandwidth}`);
  const sd = new Float64Array(d);
  if (bandwidth > 0) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < p; i++) {
        const v = pool[i * d + j];
        s += v;
        s2 += v * v;
      }
      const variance = Math.max(0, s2 / p - (s / p) ** 2);
      sd[j] = bandwidth * 1.06 * Math.sqrt(variance) * p ** -0.2;
    }
  }
  const out = new Float32Array(count * d); // [count, D]
  const features = space.names.length;
  for (let i = 0; i < count; i++) {
    const base = Math.floor(rand() * p);
    out.set(pool.subarray(base * d, (base + 1) * d), i * d);
    for (let f = 0; f < features; f++) {
      if (rand() >= mix) continue;
      const donor = Math.floor(rand() * p);
      for (const j of space.group(f)) out[i * d + j] = pool[donor * d + j];
    }
    if (bandwidth > 0) {
      for (let j = 0; j < d; j++) if (sd[j] > 0) out[i * d + j] += sd[j] * gaussian(rand);
    }
    if (space.range) {
      const [lo, hi] = space.range;
      for (let j = 0; j < d; j++) out[i * d + j] = Math.min(hi, Math.max(lo, out[i * d + j]));
    }
  }
  return new Tensor('float32', out, [count, ...space.inputShape]);
}

/** A standard normal draw (Box–Muller). */
function gaussian(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/**
 * Up to `want` synthetic inputs inside a region: drawn around the region's own examples (`pool`, [P, D]) and kept
 * where their features satisfy `inside` (a tree node's conditions), from at most `tries`·want draws. Null if none.
 */
export function sampleInside(
  space: FeatureSpace,
  pool: Float32Array,
  inside: (features: Float32Array) => boolean,
  want: number,
  rand: () => number,
  options: SampleOptions & { readonly tries?: number } = {},
): Tensor<'float32'> | null {
  const d = space.inputShape.reduce((a, b) => a * b, 1);
  const f = space.names.length;
  const count = want * (options.tries ?? 4);
  const drawn = sampleAround(space, pool, count, rand, options);
  const feats = space.encode(drawn); // [count, F]
  const kept: number[] = [];
  for (let i = 0; i < count && kept.length < want; i++) if (inside(feats.subarray(i * f, (i + 1) * f))) kept.push(i);
  if (kept.length === 0) return null;
  const out = new Float32Array(kept.length * d); // [kept, D]
  kept.forEach((i, k) => out.set(drawn.data.subarray(i * d, (i + 1) * d), k * d));
  return new Tensor('float32', out, [kept.length, ...space.inputShape]);
}

/**
 * Labelled points in feature space, with the inputs they came from (for drawing more; none where `d` is 0) and their
 * fitting weights. Grows by doubling, so adding queries node by node stays linear.
 */
export class Pool {
  size = 0;
  private buf = { inputs: new Float32Array(0), features: new Float32Array(0), labels: new Int32Array(0), weights: new Float64Array(0) };

  constructor(
    readonly d: number,
    readonly f: number,
  ) {}

  get inputs(): Float32Array {
    return this.buf.inputs.subarray(0, this.size * this.d);
  }
  get features(): Float32Array {
    return this.buf.features.subarray(0, this.size * this.f);
  }
  get labels(): Int32Array {
    return this.buf.labels.subarray(0, this.size);
  }
  get weights(): Float64Array {
    return this.buf.weights.subarray(0, this.size);
  }

  push(inputs: Float32Array, features: Float32Array, labels: Int32Array, weight: number): void {
    const n = labels.length;
    if (this.size + n > this.buf.labels.length) {
      const cap = Math.max(this.size + n, 2 * this.buf.labels.length);
      const grow = <T extends Float32Array | Int32Array | Float64Array>(a: T, per: number): T => {
        const out = new (a.constructor as new (n: number) => T)(cap * per);
        out.set(a.subarray(0, this.size * per));
        return out;
      };
      this.buf = { inputs: grow(this.buf.inputs, this.d), features: grow(this.buf.features, this.f), labels: grow(this.buf.labels, 1), weights: grow(this.buf.weights, 1) };
    }
    if (this.d > 0) this.buf.inputs.set(inputs, this.size * this.d);
    this.buf.features.set(features, this.size * this.f);
    this.buf.labels.set(labels, this.size);
    this.buf.weights.fill(weight, this.size, this.size + n);
    this.size += n;
  }

  copy(): Pool {
    const p = new Pool(this.d, this.f);
    p.push(this.inputs, this.features, this.labels, 1);
    p.buf.weights.set(this.weights);
    return p;
  }
}
