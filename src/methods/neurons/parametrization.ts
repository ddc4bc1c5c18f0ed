/**
 * Image parametrisations for feature synthesis: the optimiser moves parameters p, the model sees image(p). Each is a
 * linear map with its exact adjoint (gradients of image(p) pulled back to p), so ascent happens in a space where steps
 * are better conditioned than raw pixels.
 *
 * - `pixel`: image = p.
 * - `fourier`: image = irfft2(s ⊙ spectrum), s = 1/max(|f|, 1/max(H, W)) scaled as Lucid does (× √(HW) / 4), so
 *   low frequencies move fastest (Olah et al. 2017 "Feature Visualization"; Mordvintsev et al. 2018 "Differentiable
 *   Image Parameterizations"; lucid/optvis/param/spatial.py `fft_image`). The real 2-D DFT runs on the host (separable,
 *   O(HW(H+W)) per channel: small images only).
 * - colour decorrelation for 3 channels: rgb = M u per pixel with Lucid's square root of the ImageNet colour
 *   covariance, columns normalised by the largest column norm (lucid/optvis/param/color.py `_linear_decorelate_color`).
 *
 * Layout everywhere: Float64Array holding [B, C, H, W] images, or [B, C, H, W/2+1, 2] spectra (real, imaginary).
 *
 * @example
 * const f = fourierParam([1, 3, 48, 192]);
 * const img = f.toImage(p); const gp = f.adjoint(gImg); // ⟨f.toImage(p), g⟩ = ⟨p, f.adjoint(g)⟩
 */

/** A linear image parametrisation with its adjoint. */
export interface Parametrization {
  readonly kind: 'pixel' | 'fourier';
  /** [B, C, H, W] of the images. */
  readonly shape: readonly [number, number, number, number];
  /** Number of parameters. */
  readonly size: number;
  toImage(p: Float64Array): Float64Array;
  /** The transpose: image-space gradient → parameter-space gradient. */
  adjoint(g: Float64Array): Float64Array;
  /** A parameter vector whose image is `x` (exact: both maps are onto). */
  fromImage(x: Float64Array): Float64Array;
  /** Gaussian blur of the image of p, σ in pixels, applied in parameter space (circular: the image is periodic). */
  blur(p: Float64Array, sigma: number): Float64Array;
}

export type ImageShape = readonly [number, number, number, number];

export function pixelParam(shape: ImageShape): Parametrization {
  const size = shape[0] * shape[1] * shape[2] * shape[3];
  return {
    kind: 'pixel',
    shape,
    size,
    toImage: (p) => p.slice(),
    adjoint: (g) => g.slice(),
    fromImage: (x) => x.slice(),
    blur: (p, sigma) => gaussianBlur(p, shape, sigma),
  };
}

/** Circular separable Gaussian blur of [B, C, H, W] images (kernel radius ⌈3σ⌉, normalised); symmetric, so self-adjoint. */
export function gaussianBlur(x: Float64Array, shape: ImageShape, sigma: number): Float64Array {
  const [b, c, h, w] = shape;
  if (!(sigma > 0)) return x.slice();
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const sum = k.reduce((a, v) => a + v, 0);
  const kern = k.map((v) => v / sum);
  const tmp = new Float64Array(x.length);
  const out = new Float64Array(x.length);
  const mod = (i: number, n: number) => ((i % n) + n) % n;
  for (let m = 0; m < b * c; m++) {
    const o = m * h * w;
    for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) {
      let s = 0;
      for (let j = -r; j <= r; j++) s += kern[j + r] * x[o + y * w + mod(xx + j, w)];
      tmp[o + y * w + xx] = s;
    }
    for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) {
      let s = 0;
      for (let j = -r; j <= r; j++) s += kern[j + r] * tmp[o + mod(y + j, h) * w + xx];
      out[o + y * w + xx] = s;
    }
  }
  return out;
}

/** Signed frequency of bin k of an n-point DFT in cycles per pixel (numpy.fft.fftfreq). */
const freq = (k: number, n: number) => (k <= n / 2 ? k : k - n) / n;

/**
 * The decorrelated Fourier parametrisation: per channel, an H × (W/2+1) complex half-spectrum. The map is numpy's
 * irfft2 of the scaled spectrum (imaginary parts of self-conjugate bins are ignored, as irfft does).
 */
export function fourierParam(shape: ImageShape): Parametrization {
  const [b, c, h, w] = shape;
  const wf = Math.floor(w / 2) + 1;
  const size = b * c * h * wf * 2;
  // Lucid: scale = 1 / max(freq, 1/max(w, h)) · √(wh), image / 4.
  const scale = new Float64Array(h * wf);
  for (let ky = 0; ky < h; ky++) for (let kx = 0; kx < wf; kx++) {
    scale[ky * wf + kx] = (Math.sqrt(w * h) / 4) / Math.max(Math.hypot(freq(ky, h), kx / w), 1 / Math.max(w, h));
  }
  // Hermitian weights of the half-spectrum columns: 1 for DC (and Nyquist for even W), 2 for the rest.
  const herm = Float64Array.from({ length: wf }, (_, kx) => (kx === 0 || 2 * kx === w ? 1 : 2));
  const cy = table(h, h);
  const cx = table(w, wf);
  const plane = h * w;
  const spec = h * wf * 2;

  const toImage = (p: Float64Array): Float64Array => {
    check(p, size, 'fourier.toImage');
    const out = new Float64Array(b * c * plane);
    for (let m = 0; m < b * c; m++) synth(p.subarray(m * spec, (m + 1) * spec), out.subarray(m * plane, (m + 1) * plane), scale);
    return out;
  };
  /** One channel: scaled half-spectrum [h, wf, 2] → image [h, w]. */
  const synth = (s: Float64Array, img: Float64Array, sc: Float64Array) => {
    // T[y, kx] = Σ_ky S[ky, kx] e^{2πi ky y / h}
    const tr = new Float64Array(h * wf);
    const ti = new Float64Array(h * wf);
    for (let ky = 0; ky < h; ky++) for (let kx = 0; kx < wf; kx++) {
      const sr = s[(ky * wf + kx) * 2] * sc[ky * wf + kx];
      const si = s[(ky * wf + kx) * 2 + 1] * sc[ky * wf + kx];
      if (sr === 0 && si === 0) continue;
      for (let y = 0; y < h; y++) {
        const co = cy.cos[ky * h + y];
        const sn = cy.sin[ky * h + y];
        tr[y * wf + kx] += sr * co - si * sn;
        ti[y * wf + kx] += sr * sn + si * co;
      }
    }
    // x[y, x] = (1/hw) Σ_kx herm · Re(T[y, kx] e^{2πi kx x / w})
    for (let y = 0; y < h; y++) for (let kx = 0; kx < wf; kx++) {
      const a = (herm[kx] * tr[y * wf + kx]) / plane;
      const bb = (herm[kx] * ti[y * wf + kx]) / plane;
      for (let xx = 0; xx < w; xx++) img[y * w + xx] += a * cx.cos[kx * w + xx] - bb * cx.sin[kx * w + xx];
    }
  };

  /** The forward DFT of every row (e^{-2πi kx·x / w}, kx up to w/2): real and imaginary parts [h, wf]. */
  const rowDft = (img: Float64Array): [Float64Array, Float64Array] => {
    const re = new Float64Array(h * wf);
    const im = new Float64Array(h * wf);
    for (let y = 0; y < h; y++) for (let kx = 0; kx < wf; kx++) {
      let a = 0;
      let bb = 0;
      for (let xx = 0; xx < w; xx++) {
        a += img[y * w + xx] * cx.cos[kx * w + xx];
        bb -= img[y * w + xx] * cx.sin[kx * w + xx];
      }
      re[y * wf + kx] = a;
      im[y * wf + kx] = bb;
    }
    return [re, im];
  };

  const adjoint = (g: Float64Array): Float64Array => {
    check(g, b * c * plane, 'fourier.adjoint');
    const out = new Float64Array(size);
    for (let m = 0; m < b * c; m++) {
      const img = g.subarray(m * plane, (m + 1) * plane);
      const s = out.subarray(m * spec, (m + 1) * spec);
      const [gr, gi] = rowDft(img);
      for (let y = 0; y < h; y++) for (let kx = 0; kx < wf; kx++) {
        gr[y * wf + kx] *= herm[kx] / plane;
        gi[y * wf + kx] *= herm[kx] / plane;
      }
      for (let ky = 0; ky < h; ky++) for (let kx = 0; kx < wf; kx++) {
        let sr = 0;
        let si = 0;
        for (let y = 0; y < h; y++) {
          const co = cy.cos[ky * h + y];
          const sn = cy.sin[ky * h + y];
          sr += gr[y * wf + kx] * co + gi[y * wf + kx] * sn;
          si += -gr[y * wf + kx] * sn + gi[y * wf + kx] * co;
        }
        s[(ky * wf + kx) * 2] = sr * scale[ky * wf + kx];
        s[(ky * wf + kx) * 2 + 1] = si * scale[ky * wf + kx];
      }
    }
    return out;
  };

  /** rfft2 (forward DFT, e^{-2πi…}) divided by the scale: irfft2 of it gives x back exactly. */
  const fromImage = (x: Float64Array): Float64Array => {
    check(x, b * c * plane, 'fourier.fromImage');
    const out = new Float64Array(size);
    for (let m = 0; m < b * c; m++) {
      const img = x.subarray(m * plane, (m + 1) * plane);
      const s = out.subarray(m * spec, (m + 1) * spec);
      const [ur, ui] = rowDft(img);
      for (let ky = 0; ky < h; ky++) for (let kx = 0; kx < wf; kx++) {
        let sr = 0;
        let si = 0;
        for (let y = 0; y < h; y++) {
          const co = cy.cos[ky * h + y];
          const sn = -cy.sin[ky * h + y];
          sr += ur[y * wf + kx] * co - ui[y * wf + kx] * sn;
          si += ur[y * wf + kx] * sn + ui[y * wf + kx] * co;
        }
        s[(ky * wf + kx) * 2] = sr / scale[ky * wf + kx];
        s[(ky * wf + kx) * 2 + 1] = si / scale[ky * wf + kx];
      }
    }
    return out;
  };

  /** Blur as a product with the Gaussian's transfer function exp(−2π²σ²|f|²) (exact circular blur). */
  const blur = (p: Float64Array, sigma: number): Float64Array => {
    const out = p.slice();
    if (!(sigma > 0)) return out;
    for (let m = 0; m < b * c; m++) for (let ky = 0; ky < h; ky++) for (let kx = 0; kx < wf; kx++) {
      const f2 = freq(ky, h) ** 2 + (kx / w) ** 2;
      const t = Math.exp(-2 * Math.PI * Math.PI * sigma * sigma * f2);
      const i = m * spec + (ky * wf + kx) * 2;
      out[i] *= t;
      out[i + 1] *= t;
    }
    return out;
  };

  return { kind: 'fourier', shape, size, toImage, adjoint, fromImage, blur };
}

/** cos/sin of 2π k j / n for k < rows, j < n, row-major [k, j]. */
function table(n: number, rows: number): { cos: Float64Array; sin: Float64Array } {
  const cos = new Float64Array(rows * n);
  const sin = new Float64Array(rows * n);
  for (let k = 0; k < rows; k++) for (let j = 0; j < n; j++) {
    const a = (2 * Math.PI * ((k * j) % n)) / n;
    cos[k * n + j] = Math.cos(a);
    sin[k * n + j] = Math.sin(a);
  }
  return { cos, sin };
}

function check(a: Float64Array, n: number, where: string): void {
  if (a.length !== n) throw new Error(`${where}: expected ${n} values, got ${a.length}`);
}

/** Lucid's square root of the ImageNet colour correlation (by SVD), lucid/optvis/param/color.py. */
export const COLOR_SVD_SQRT = [
  [0.26, 0.09, 0.02],
  [0.27, 0.0, -0.05],
  [0.27, -0.09, 0.03],
] as const;

/** The lower-triangular (Cholesky) factor of the same covariance, from Lucid's earlier param module. */
export const COLOR_CHOLESKY = [
  [0.28, 0.0, 0.0],
  [0.25, 0.12, 0.0],
  [0.23, 0.14, 0.14],
] as const;

/** A 3×3 colour factor divided by its largest column norm, as Lucid normalises it. */
export function normalizedColor(m: readonly (readonly number[])[]): number[][] {
  let max = 0;
  for (let j = 0; j < 3; j++) max = Math.max(max, Math.hypot(m[0][j], m[1][j], m[2][j]));
  return m.map((row) => row.map((v) => v / max));
}

/** rgb[i] = Σ_j M[i][j] u[j] at every pixel of [B, 3, H, W]; with `transpose`, Mᵀ (the adjoint). */
export function mixColors(u: Float64Array, shape: ImageShape, m: readonly (readonly number[])[], transpose = false): Float64Array {
  const [b, c, h, w] = shape;
  if (c !== 3) throw new Error(`colour decorrelation needs 3 channels, got ${c}`);
  const plane = h * w;
  const out = new Float64Array(u.length);
  for (let n = 0; n < b; n++) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
    const k = transpose ? m[j][i] : m[i][j];
    if (k === 0) continue;
    const dst = (n * 3 + i) * plane;
    const src = (n * 3 + j) * plane;
    for (let q = 0; q < plane; q++) out[dst + q] += k * u[src + q];
  }
  return out;
}

/** The inverse of a 3×3 matrix (to start colour-decorrelated synthesis from a given image). */
export function invert3(m: readonly (readonly number[])[]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  if (Math.abs(det) < 1e-12) throw new Error('invert3: singular colour matrix');
  return [
    [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
    [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
    [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
  ];
}
