/**
 * PNG images to and from float tensors in the layout ONNX image models take ([1, C, H, W] by default), and saliency
 * maps or inputs back to PNG. Decoding is exact for every bit depth (1 to 16), palette and tRNS included.
 *
 * `readPng`/`writePng` import `node:fs/promises` lazily; pngjs itself needs Node's Buffer and zlib.
 *
 * @example
 * const x = await readPng('digit.png', { channels: 1 }); // Tensor<'float32'>[1×1×28×28] in [0, 1]
 * const y = await readPng('cat.png', { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
 * await writePng('saliency.png', map); // map's own min..max spread over 0..255
 */

import { PNG } from 'pngjs';
import { inflateSync } from 'zlib'; // the specifier pngjs requires, so one browser alias serves both
import { Tensor } from '../runtime/tensor.js';

export type ImageLayout = 'nchw' | 'nhwc';

export interface DecodePngOptions {
  /** Channels of the result; default 1 for grey images, 3 for colour. Alpha is kept only with 4. */
  channels?: 1 | 3 | 4;
  /** Default 'nchw', the ONNX convention. */
  layout?: ImageLayout;
  /** Maps sample values 0..max onto [lo, hi]; default [0, 1]. */
  scale?: readonly [number, number];
  /** Per-channel (or one for all) normalisation `(v - mean) / std`, applied after `scale`. */
  mean?: number | readonly number[];
  std?: number | readonly number[];
}

export interface EncodePngOptions {
  /** How to read a 3-d or 4-d tensor; default 'nchw'. */
  layout?: ImageLayout;
  /** Values mapped onto black..white (clamped); default the tensor's own finite min..max. */
  range?: readonly [number, number];
  /** Default 8. */
  bitDepth?: 8 | 16;
}

/** ITU-R BT.601 luma weights, the usual grey of colour images (PIL's `convert('L')`, OpenCV). */
const LUMA = [0.299, 0.587, 0.114] as const;

/** Decodes PNG bytes into a float32 image tensor, [1, C, H, W] (or [1, H, W, C] with `layout: 'nhwc'`). */
export function decodePng(bytes: Uint8Array, opts: DecodePngOptions = {}): Tensor<'float32'> {
  return decode(bytes, opts, 'decodePng');
}

/** Reads a PNG file as {@link decodePng} does; errors name the path. */
export async function readPng(path: string, opts: DecodePngOptions = {}): Promise<Tensor<'float32'>> {
  const { readFile } = await import('node:fs/promises');
  return decode(await readFile(path), opts, `readPng ${path}`);
}

/**
 * Encodes an image tensor as PNG: [H, W], [C, H, W] or [1, C, H, W] with C in 1 (grey), 3 (RGB), 4 (RGBA), or the
 * channels-last forms with `layout: 'nhwc'`. Values map linearly from `range` to 0..255 (0..65535 at 16 bits).
 */
export function encodePng(t: Tensor, opts: EncodePngOptions = {}): Uint8Array {
  return encode(t, opts, 'encodePng');
}

/** Writes an image tensor as a PNG file, as {@link encodePng} does. */
export async function writePng(path: string, t: Tensor, opts: EncodePngOptions = {}): Promise<void> {
  const bytes = encode(t, opts, `writePng ${path}`);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(path, bytes);
}

function decode(bytes: Uint8Array, opts: DecodePngOptions, where: string): Tensor<'float32'> {
  const png = readRaw(bytes, where);
  const { width: w, height: h } = png;
  const c = opts.channels ?? (png.color ? 3 : 1);
  if (c !== 1 && c !== 3 && c !== 4) throw new Error(`${where}: channels must be 1, 3 or 4, got ${String(c)}`);
  const [lo, hi] = opts.scale ?? [0, 1];
  const mean = perChannel(opts.mean, 0, c, 'mean', where);
  const std = perChannel(opts.std, 1, c, 'std', where);
  if (std.some((s) => s === 0 || !Number.isFinite(s))) {
    throw new Error(`${where}: std must be finite and non-zero, got [${std}]`);
  }

  // pngjs with skipRescale keeps raw samples: up to 2^depth - 1, except palette entries, which are 8-bit.
  const max = png.palette ? 255 : 2 ** png.depth - 1;
  const rgba = png.data as ArrayLike<number>; // [H, W, 4]; grey repeated in r, g, b; alpha = max when absent
  const nhwc = (opts.layout ?? 'nchw') === 'nhwc';
  const out = new Float32Array(c * h * w);
  for (let p = 0; p < h * w; p++) {
    for (let ch = 0; ch < c; ch++) {
      const [r, g, b] = [rgba[4 * p], rgba[4 * p + 1], rgba[4 * p + 2]];
      const v = c > 1 ? rgba[4 * p + ch] : png.color ? LUMA[0] * r + LUMA[1] * g + LUMA[2] * b : r;
      const scaled = lo + ((hi - lo) * v) / max;
      out[nhwc ? p * c + ch : ch * h * w + p] = (scaled - mean[ch]) / std[ch];
    }
  }
  return new Tensor('float32', out, nhwc ? [1, h, w, c] : [1, c, h, w]);
}

/**
 * pngjs's parse behind our own walk over the chunks: pngjs reports a bad CRC or a short file with messages about its
 * stream ("unrecognised content at end of stream") and decodes a broken zlib stream as black, so lengths, CRCs and
 * the compressed data are checked here first.
 */
function readRaw(bytes: Uint8Array, where: string): ReturnType<typeof PNG.sync.read> {
  const invalid = (reason: string, cause?: unknown): never => {
    throw new Error(`${where}: not a valid PNG: ${reason}`, { cause });
  };
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) invalid('bad signature');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  let pos = 8;
  for (;;) {
    if (pos + 8 > bytes.length) invalid(`truncated (no IEND chunk; the file ends at byte ${bytes.length})`);
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const end = pos + 12 + length; // length, type, data, CRC
    const chunk = `chunk ${JSON.stringify(type)} at byte ${pos}`;
    if (end > bytes.length) invalid(`truncated (${chunk} needs ${end - bytes.length} more bytes)`);
    if (crc32(bytes.subarray(pos + 4, end - 4)) !== view.getUint32(end - 4)) invalid(`bad CRC in ${chunk}`);
    if (type === 'IDAT') idat.push(bytes.subarray(pos + 8, end - 4));
    pos = end;
    if (type === 'IEND') break;
  }
  // pngjs's synchronous inflate returns zeros for a broken zlib stream on current Node, so inflate once here to know.
  try {
    inflateSync(Buffer.concat(idat));
  } catch (e) {
    invalid(`corrupt image data (${e instanceof Error ? e.message : String(e)})`, e);
  }
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    // Bytes after IEND are ignored, as most decoders do (pngjs would reject them).
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, pos), { skipRescale: true });
  } catch (e) {
    return invalid(e instanceof TypeError ? 'corrupt image data' : e instanceof Error ? e.message : String(e), e);
  }
  if (!png.data || png.data.length !== png.width * png.height * 4) invalid('no image data');
  return png;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

/** The CRC-32 of PNG chunks (ISO 3309, as zlib's). */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One value per channel from an option that may give one for all. */
function perChannel(
  v: number | readonly number[] | undefined,
  fill: number,
  c: number,
  name: string,
  where: string,
): number[] {
  if (v === undefined) return new Array<number>(c).fill(fill);
  if (typeof v === 'number') return new Array<number>(c).fill(v);
  if (v.length !== c) throw new Error(`${where}: ${name} has ${v.length} values but the image has ${c} channels`);
  return [...v];
}

function encode(t: Tensor, opts: EncodePngOptions, where: string): Uint8Array {
  const { c, h, w, nhwc } = imageShape(t, opts.layout ?? 'nchw', where);
  const values = asNumbers(t, where);
  const [lo, hi] = opts.range ?? finiteRange(values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi) {
    throw new Error(`${where}: range must be finite with lo <= hi, got [${lo}, ${hi}]`);
  }
  const bitDepth = opts.bitDepth ?? 8;
  const top = bitDepth === 16 ? 65535 : 255;
  // NaN is black; at or beyond the ends clamps, which also makes a constant image (lo === hi) black.
  const level = (v: number) =>
    Number.isNaN(v) || v <= lo ? 0 : v >= hi ? top : Math.round(((v - lo) * top) / (hi - lo));

  const samples = bitDepth === 16 ? new Uint16Array(h * w * c) : new Uint8Array(h * w * c); // [H, W, C]
  for (let p = 0; p < h * w; p++) {
    for (let ch = 0; ch < c; ch++) samples[p * c + ch] = level(values[nhwc ? p * c + ch : ch * h * w + p]);
  }
  const colorType = ({ 1: 0, 3: 2, 4: 6 } as const)[c];
  const png = new PNG({ width: w, height: h });
  // pngjs reads 16-bit input as native-endian Uint16 over the whole buffer, so hand it the array's own buffer.
  png.data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  const out = PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: c === 4, bitDepth });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Reads [H, W], [C, H, W] or [1, C, H, W] (channels last for 'nhwc') with C in 1, 3, 4; names the shape otherwise. */
function imageShape(
  t: Tensor,
  layout: ImageLayout,
  where: string,
): { c: 1 | 3 | 4; h: number; w: number; nhwc: boolean } {
  const s = t.shape;
  const bad = (why: string): never => {
    const forms = layout === 'nhwc' ? '[H, W], [H, W, C] or [1, H, W, C]' : '[H, W], [C, H, W] or [1, C, H, W]';
    const shape = `[${s.join(', ')}]`;
    throw new Error(`${where}: cannot encode shape ${shape} as an image (${why}); expected ${forms} with C in 1, 3, 4`);
  };
  if (s.length < 2 || s.length > 4) return bad(`rank ${s.length}`);
  if (s.length === 4 && s[0] !== 1) return bad(`batch of ${s[0]}`);
  const r = s.length;
  const [h, w, c] = r === 2 ? [s[0], s[1], 1] : layout === 'nhwc' ? s.slice(-3) : [s[r - 2], s[r - 1], s[r - 3]];
  if (c !== 1 && c !== 3 && c !== 4) return bad(`${c} channels`);
  if (h === 0 || w === 0) return bad('empty image');
  return { c, h, w, nhwc: layout === 'nhwc' && s.length > 2 };
}

function finiteRange(values: Float64Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

function asNumbers(t: Tensor, where: string): Float64Array {
  if (t.dtype === 'string') throw new Error(`${where}: cannot encode a string tensor as an image`);
  if (t.dtype === 'float16') return Float64Array.from(t.data as Uint16Array, halfToFloat);
  return Float64Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** IEEE 754 half (raw bits, as tensors store float16) to a number. */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
