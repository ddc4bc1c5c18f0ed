/**
 * Grad-CAM and guided Grad-CAM (Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra, "Grad-CAM: Visual Explanations
 * from Deep Networks via Gradient-based Localization", ICCV 2017). At a feature map A [N, K, H', W'] the weight of
 * channel k is the spatial mean of the gradient, α_k = (1/H'W') Σ_ij ∂y/∂A^k_ij, and the map is
 * ReLU(Σ_k α_k A^k) [N, 1, H', W']. Guided Grad-CAM multiplies guided backpropagation by the upsampled map.
 *
 * Upsampling: bilinear to the image's H × W with half-pixel centres (source coordinate (d + ½)·H'/H − ½, clamped at
 * the edges), as PyTorch's `interpolate(mode='bilinear', align_corners=False)` and OpenCV's `resize`. The attributions
 * are that map repeated over the image's C channels, so they have the image's shape [N, C, H, W]; `extra.cam` keeps
 * the map at the site's resolution, `extra.map` the upsampled one, `extra.weights` the α [N, K].
 *
 * Default site: the last site in graph order whose value is 4-D [N, K, H', W'] with H'·W' > 1 — the last spatial
 * feature map before the head pools or flattens it away (the paper uses the last convolutional layer).
 *
 * @example
 * const cam = await gradCam(model, { x }, { target: 3, site: 'relu2.relu' });
 * cam.extra!.cam; // [N, 1, 28, 28] before upsampling
 * const ggc = await guidedGradCam(model, { x }, { target: 3 }); // at the default site
 */
import type { Model } from '../../model/model.js';
import type { Site } from '../../model/sites.js';
import { Tensor } from '../../runtime/tensor.js';
import { passiveAttribution } from '../taxonomy.js';
import { Attributor, type AttributionOptions } from './attributor.js';
import { guidedBackprop } from './backprop.js';
import type { Attribution, Check } from './explanation.js';
import { assemble, sameTarget } from './hidden-shared.js';

/** `wrt` names the image input [N, C, H, W] the map is upsampled to (default: the model's only float input). */
export interface CamOptions extends AttributionOptions {
  /** The feature-map site [N, K, H', W'] (default: the last spatial feature map, see above). */
  readonly site?: string;
}

type Inputs = Readonly<Record<string, Tensor>>;

const isSpatial4d = (s: Site) =>
  s.shape?.length === 4 && (s.dtype === undefined || s.dtype === 'float32') && !(typeof s.shape[2] === 'number' && typeof s.shape[3] === 'number' && s.shape[2] * s.shape[3] <= 1);

/** The default Grad-CAM site: the last non-input site with a 4-D value of more than one spatial position. */
export function defaultCamSite(model: Model): string {
  const found = model.sites.filter((s) => s.op !== 'Input' && isSpatial4d(s));
  if (found.length === 0) throw new Error(`grad-cam: the model has no 4-D feature map [N, K, H', W'] with H'·W' > 1 (sites: ${model.sites.map((s) => s.name).join(', ')}); name one with { site }`);
  return found[found.length - 1].name;
}

/** 4-D sites ordered by their distance in graph order from `name`: the ones to suggest. */
function nearbyMaps(model: Model, name: string): string[] {
  const at = model.sites.findIndex((s) => s.name === name || s.value === name);
  return model.sites
    .map((s, i) => ({ s, d: Math.abs(i - at) }))
    .filter(({ s }) => s.op !== 'Input' && isSpatial4d(s))
    .sort((p, q) => p.d - q.d)
    .slice(0, 5)
    .map(({ s }) => s.name);
}

/**
 * Bilinear resize of planes [P, h, w] to [P, H, W] with half-pixel centres: source (d + ½)·h/H − ½, negative
 * coordinates clamped to 0 and the upper neighbour to the last row/column.
 */
export function upsampleBilinear(src: Float32Array, planes: number, h: number, w: number, H: number, W: number): Float32Array {
  const axis = (inn: number, out: number) => {
    const lo = new Int32Array(out);
    const hi = new Int32Array(out);
    const t = new Float64Array(out);
    for (let d = 0; d < out; d++) {
      const real = Math.max(0, ((d + 0.5) * inn) / out - 0.5);
      lo[d] = Math.min(inn - 1, Math.floor(real));
      hi[d] = Math.min(inn - 1, lo[d] + 1);
      t[d] = real - lo[d];
    }
    return { lo, hi, t };
  };
  const ys = axis(h, H);
  const xs = axis(w, W);
  const out = new Float32Array(planes * H * W);
  for (let p = 0; p < planes; p++) {
    const s = p * h * w;
    for (let i = 0; i < H; i++) {
      const r0 = s + ys.lo[i] * w;
      const r1 = s + ys.hi[i] * w;
      const ty = ys.t[i];
      for (let j = 0; j < W; j++) {
        const tx = xs.t[j];
        const top = src[r0 + xs.lo[j]] * (1 - tx) + src[r0 + xs.hi[j]] * tx;
        const bottom = src[r1 + xs.lo[j]] * (1 - tx) + src[r1 + xs.hi[j]] * tx;
        out[p * H * W + i * W + j] = top * (1 - ty) + bottom * ty;
      }
    }
  }
  return out;
}

/** The image input's name and [N, C, H, W] shape. */
function imageOf(model: Model, inputs: Inputs, wrt: string | undefined): { name: string; shape: readonly number[] } {
  const floats = model.inputs.filter((i) => i.dtype === 'float32').map((i) => i.name);
  const name = wrt ?? (floats.length === 1 ? floats[0] : undefined);
  if (name === undefined) throw new Error(`grad-cam: name the image input with { wrt } (float inputs: ${floats.join(', ') || 'none'})`);
  const t = inputs[name];
  if (!model.inputs.some((i) => i.name === name) || !t) throw new Error(`grad-cam: '${name}' is not a given input of the model (inputs: ${model.inputs.map((i) => i.name).join(', ')})`);
  if (t.rank !== 4) throw new Error(`grad-cam: the image '${name}' must be [N, C, H, W] to upsample the map to, got [${t.shape.join(', ')}]`);
  return { name, shape: t.shape };
}

interface Cam {
  readonly a: Attributor;
  readonly site: string;
  readonly image: { name: string; shape: readonly number[] };
  readonly weights: Float32Array; // [N, K]
  readonly cam: Float32Array; // [N, h, w]
  readonly map: Float32Array; // [N, H, W]
  readonly hw: readonly [number, number];
}

async function computeCam(model: Model, inputs: Inputs, options: CamOptions): Promise<Cam> {
  const image = imageOf(model, inputs, options.wrt);
  const site = options.site ?? defaultCamSite(model);
  model.site(site); // an unknown name lists the nearest ones
  const { a, grads: G } = await Attributor.withGradient(model, inputs, { ...options, wrt: site });
  if (a.x.rank !== 4) {
    throw new Error(`grad-cam: site '${site}' is [${a.x.shape.join(', ')}], not a feature map [N, K, H', W']; 4-D sites nearby: ${nearbyMaps(model, site).join(', ') || 'none'}`);
  }
  const [N, K, h, w] = a.x.shape;
  const A = a.x.data;
  const hw = h * w;
  const weights = new Float32Array(N * K);
  const cam = new Float32Array(N * hw);
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < K; k++) {
      const o = (i * K + k) * hw;
      let s = 0;
      for (let p = 0; p < hw; p++) s += G[o + p];
      const alpha = s / hw;
      weights[i * K + k] = alpha;
      for (let p = 0; p < hw; p++) cam[i * hw + p] += alpha * A[o + p];
    }
    for (let p = 0; p < hw; p++) cam[i * hw + p] = Math.max(0, cam[i * hw + p]);
  }
  const [H, W] = image.shape.slice(2);
  return { a, site, image, weights, cam, map: upsampleBilinear(cam, N, h, w, H, W), hw: [h, w] };
}

/** The map [N, H·W] repeated over C channels: [N, C, H, W]. */
function overChannels(map: Float32Array, shape: readonly number[]): Float32Array {
  const [N, C, H, W] = shape;
  const out = new Float32Array(N * C * H * W);
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) out.set(map.subarray(i * H * W, (i + 1) * H * W), (i * C + c) * H * W);
  return out;
}

function camChecks(c: Cam): Check[] {
  const [N, H, W] = [c.a.n, c.image.shape[2], c.image.shape[3]];
  const peaks = Array.from({ length: N }, (_, i) => c.map.subarray(i * H * W, (i + 1) * H * W).reduce((m, v) => Math.max(m, v), 0));
  return [{ name: 'map peak', value: peaks, detail: 'largest value of each upsampled map; 0 means no location has positive evidence (the ReLU erased the whole map)' }];
}

function camExtra(c: Cam): Attribution['extra'] {
  const [N, K] = c.a.x.shape;
  const [H, W] = c.image.shape.slice(2);
  return {
    cam: new Tensor('float32', c.cam, [N, 1, ...c.hw]),
    map: new Tensor('float32', c.map, [N, 1, H, W]),
    weights: new Tensor('float32', c.weights, [N, K]),
  };
}

const UPSAMPLING = 'bilinear, half-pixel centres (align_corners = false)';

/** Grad-CAM at `site`, upsampled to the image and repeated over its channels. */
export async function gradCam(model: Model, inputs: Inputs, options: CamOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const c = await computeCam(model, inputs, options);
  return assemble(c.a, {
    method: 'grad-cam',
    taxonomy: passiveAttribution(),
    wrt: c.image.name,
    attributions: new Tensor('float32', overChannels(c.map, c.image.shape), c.image.shape),
    checks: camChecks(c),
    params: { site: c.site, upsampling: UPSAMPLING },
    extra: camExtra(c),
    started,
  });
}

/** Guided backpropagation to the image ⊙ the upsampled Grad-CAM map (broadcast over channels). */
export async function guidedGradCam(model: Model, inputs: Inputs, options: CamOptions = {}): Promise<Attribution> {
  const started = performance.now();
  const c = await computeCam(model, inputs, options);
  const gb = await guidedBackprop(model, inputs, { ...options, wrt: c.image.name, target: sameTarget(c.a) });
  const out = overChannels(c.map, c.image.shape);
  for (let i = 0; i < out.length; i++) out[i] *= gb.attributions.data[i];
  return assemble(c.a, {
    method: 'guided-grad-cam',
    taxonomy: passiveAttribution(),
    wrt: c.image.name,
    attributions: new Tensor('float32', out, c.image.shape),
    checks: [...camChecks(c), ...gb.checks],
    params: { site: c.site, upsampling: UPSAMPLING },
    extra: { ...camExtra(c), guidedBackprop: gb.attributions },
    started,
  });
}
