/**
 * Baselines (references) of path and perturbation methods: a constant (zero by default), a tensor of the examples'
 * shape or of one example's shape, or a blurred copy of each image (a Gaussian blur over H and W of [N, C, H, W],
 * Fong & Vedaldi 2017's "blur" perturbation and RISE's blur substrate).
 */
import { Tensor } from '../../runtime/tensor.js';

export type Baseline = number | 'zero' | 'blur' | { readonly blurSigma: number } | Tensor;

/** The baseline of each example as float32 [N, ...] like x. */
export function resolveBaseline(baseline: Baseline | undefined, x: Tensor<'float32'>, what = 'baseline'): Tensor<'float32'> {
  if (baseline === undefined || baseline === 'zero') return Tensor.zeros('float32', x.shape);
  if (typeof baseline === 'number') {
    if (!Number.isFinite(baseline)) throw new Error(`${what}: must be finite, got ${baseline}`);
    return new Tensor('float32', new Float32Array(x.size).fill(baseline), x.shape);
  }
  if (baseline === 'blur' || (typeof baseline === 'object' && 'blurSigma' in baseline)) {
    const sigma = baseline === 'blur' ? Math.max(1, Math.min(...x.shape.slice(-2)) / 8) : baseline.blurSigma;
    return gaussianBlur(x, sigma);
  }
  if (!(baseline instanceof Tensor)) throw new Error(`${what}: expected 'zero', 'blur', a number or a tensor, got ${JSON.stringify(baseline)}`);
  if (baseline.dtype !== 'float32') throw new Error(`${what}: must be float32, got ${baseline.dtype}`);
  const row = x.shape.slice(1).join();
  if (baseline.shape.join() === x.shape.join()) return baseline as Tensor<'float32'>;
  const one = baseline.shape.join() === row ? baseline : baseline.shape[0] === 1 && baseline.shape.slice(1).join() === row ? baseline : undefined;
  if (!one) throw new Error(`${what}: shape [${baseline.shape.join(', ')}] fits neither the examples [${x.shape.join(', ')}] nor one example [${x.shape.slice(1).join(', ')}]`);
  const out = new Float32Array(x.size);
  const n = x.shape[0];
  const size = x.size / Math.max(1, n);
  for (let i = 0; i < n; i++) out.set(one.data as Float32Array, i * size);
  for (const v of out) if (!Number.isFinite(v)) throw new Error(`${what}: holds NaN or infinity`);
  return new Tensor('float32', out, x.shape);
}

/** Separable Gaussian blur over the last two axes (edges clamped); other axes are independent. */
export function gaussianBlur(x: Tensor<'float32'>, sigma: number): Tensor<'float32'> {
  if (x.rank < 3) throw new Error(`blur: needs images [N, (C,) H, W], got [${x.shape.join(', ')}]`);
  if (!(sigma > 0)) throw new Error(`blur: sigma must be positive, got ${sigma}`);
  const [H, W] = x.shape.slice(-2);
  const r = Math.ceil(3 * sigma);
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const z = k.reduce((a, b) => a + b, 0);
  const kernel = k.map((v) => v / z);
  const planes = x.size / (H * W);
  const out = new Float32Array(x.size);
  const tmp = new Float32Array(H * W);
  for (let p = 0; p < planes; p++) {
    const src = x.data.subarray(p * H * W, (p + 1) * H * W);
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        let s = 0;
        for (let t = -r; t <= r; t++) s += kernel[t + r] * src[i * W + Math.min(W - 1, Math.max(0, j + t))];
        tmp[i * W + j] = s;
      }
    }
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < W; j++) {
        let s = 0;
        for (let t = -r; t <= r; t++) s += kernel[t + r] * tmp[Math.min(H - 1, Math.max(0, i + t)) * W + j];
        out[p * H * W + i * W + j] = s;
      }
    }
  }
  return new Tensor('float32', out, x.shape);
}

/** A baseline as text, for a result's settings. */
export function describeBaseline(b: Baseline | undefined): string {
  if (b === undefined) return 'zero';
  if (b instanceof Tensor) return `tensor [${b.shape.join(', ')}]`;
  return typeof b === 'object' ? `blur σ=${b.blurSigma}` : String(b);
}
