/**
 * Attribution heatmaps over images: the attribution summed over channels, mapped by a diverging colour scale
 * (blue negative, white zero, red positive; symmetric about zero, saturating at the 99.5th percentile of |a| so one
 * extreme value does not wash the map out), blended over the image in grey.
 *
 * @example
 * await writePng('heat.png', heatmapOverlay(x [C,H,W], attributions [C,H,W]), { range: [0, 1] });
 */
import { Tensor } from '../runtime/tensor.js';

export interface HeatmapOptions {
  /** Weight of the heatmap over the grey image (default 0.6). */
  readonly alpha?: number;
  /** Quantile of |a| that maps to full colour (default 0.995). */
  readonly saturate?: number;
}

/** One example's attribution as an [H, W] map: summed over the channel axis of [C, H, W]. */
export function channelSum(a: Tensor<'float32'>): Float32Array {
  if (a.rank === 2) return Float32Array.from(a.data);
  if (a.rank !== 3) throw new Error(`heatmap: expected [C, H, W] or [H, W], got [${a.shape.join(', ')}]`);
  const [C, H, W] = a.shape;
  const out = new Float32Array(H * W);
  for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) out[p] += a.data[c * H * W + p];
  return out;
}

/** RGB float32 [3, H, W] in [0, 1]: the heatmap of `attribution` over `image` (both [C, H, W] or [H, W]). */
export function heatmapOverlay(image: Tensor<'float32'>, attribution: Tensor<'float32'>, options: HeatmapOptions = {}): Tensor<'float32'> {
  const [H, W] = attribution.shape.slice(-2);
  if (image.shape.slice(-2).join() !== `${H},${W}`) throw new Error(`heatmap: image [${image.shape.join(', ')}] and attribution [${attribution.shape.join(', ')}] differ in H, W`);
  const alpha = options.alpha ?? 0.6;
  const map = channelSum(attribution);
  const grey = channelSum(image);
  const channels = image.rank === 3 ? image.shape[0] : 1;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of grey) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const mags = Float32Array.from(map, Math.abs).sort();
  const scale = mags[Math.min(mags.length - 1, Math.floor((options.saturate ?? 0.995) * mags.length))] || mags[mags.length - 1] || 1;
  const out = new Float32Array(3 * H * W);
  for (let p = 0; p < H * W; p++) {
    const g = hi > lo ? (grey[p] - lo) / (hi - lo) : channels > 0 ? 0.5 : 0;
    const t = Math.max(-1, Math.min(1, map[p] / scale));
    // Diverging scale: white at 0, red (1, 0, 0) at +1, blue (0, 0, 1) at −1.
    const rgb = t >= 0 ? [1, 1 - t, 1 - t] : [1 + t, 1 + t, 1];
    for (let c = 0; c < 3; c++) out[c * H * W + p] = (1 - alpha) * g + alpha * rgb[c];
  }
  return new Tensor('float32', out, [3, H, W]);
}
