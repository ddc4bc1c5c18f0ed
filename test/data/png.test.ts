import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { PNG } from 'pngjs';
import { decodePng, encodePng, readPng, writePng } from '../../src/data/png.js';
import { Tensor } from '../../src/runtime/tensor.js';

// Compiled to build/test/data/, so the repository root is three levels up.
const FIXTURES = fileURLToPath(new URL('../../../test/data/fixtures/png/', import.meta.url));
const W = 5;
const H = 4;

type Pixel = (x: number, y: number) => number[];

/** A PNG written by pngjs directly (not by encodePng), from a per-pixel formula of samples. */
function pngjsImage(colorType: 0 | 2 | 6, bitDepth: 8 | 16, pixel: Pixel): Uint8Array {
  const c = { 0: 1, 2: 3, 6: 4 }[colorType];
  const samples = bitDepth === 16 ? new Uint16Array(W * H * c) : new Uint8Array(W * H * c);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) samples.set(pixel(x, y), (y * W + x) * c);
  const png = new PNG({ width: W, height: H });
  png.data = Buffer.from(samples.buffer);
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: c === 4, bitDepth });
}

const grey8: Pixel = (x, y) => [(x * 17 + y * 40) % 256];
const rgb8: Pixel = (x, y) => [(x * 30 + y) % 256, (y * 50 + x * 3) % 256, 255 - x * 20];
const rgba8: Pixel = (x, y) => [...rgb8(x, y), (x * y * 9) % 256];
const grey16: Pixel = (x, y) => [x * 4099 + y * 257 + 1];
const rgb16: Pixel = (x, y) => [x * 9001 + y, 65535 - y * 1000, x * y * 1111];

/** Expected [1, C, H, W] values: sample / max for each channel of `pixel`. */
function nchw(pixel: Pixel, c: number, max: number, w = W, h = H): number[] {
  const out: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out.push(Math.fround(pixel(x, y)[ch] / max));
  }
  return out;
}

const luma = (p: number[]) => 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];

function assertClose(actual: ArrayLike<number>, expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `at ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

test('8-bit grey, RGB and RGBA decode to exact [1, C, H, W] values', () => {
  const grey = decodePng(pngjsImage(0, 8, grey8));
  assert.deepEqual(grey.shape, [1, 1, H, W]);
  assert.deepEqual(Array.from(grey.data), nchw(grey8, 1, 255));

  const rgb = decodePng(pngjsImage(2, 8, rgb8));
  assert.deepEqual(rgb.shape, [1, 3, H, W]);
  assert.deepEqual(Array.from(rgb.data), nchw(rgb8, 3, 255));

  const rgba = pngjsImage(6, 8, rgba8);
  assert.deepEqual(Array.from(decodePng(rgba).data), nchw(rgba8, 3, 255), 'alpha dropped by default');
  const withAlpha = decodePng(rgba, { channels: 4 });
  assert.deepEqual(withAlpha.shape, [1, 4, H, W]);
  assert.deepEqual(Array.from(withAlpha.data), nchw(rgba8, 4, 255));
});

test('16-bit images keep their full precision', () => {
  const grey = decodePng(pngjsImage(0, 16, grey16));
  assert.deepEqual(grey.shape, [1, 1, H, W]);
  assert.deepEqual(Array.from(grey.data), nchw(grey16, 1, 65535));
  const rgb = decodePng(pngjsImage(2, 16, rgb16));
  assert.deepEqual(Array.from(rgb.data), nchw(rgb16, 3, 65535));
});

test("layout 'nhwc' puts channels last", () => {
  const t = decodePng(pngjsImage(2, 8, rgb8), { layout: 'nhwc' });
  assert.deepEqual(t.shape, [1, H, W, 3]);
  const expected: number[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) for (const v of rgb8(x, y)) expected.push(Math.fround(v / 255));
  }
  assert.deepEqual(Array.from(t.data), expected);
});

test('colour to grey uses BT.601 luma; grey to RGB repeats the channel', () => {
  const grey = decodePng(pngjsImage(2, 8, rgb8), { channels: 1 });
  assert.deepEqual(grey.shape, [1, 1, H, W]);
  assert.deepEqual(Array.from(grey.data), nchw((x, y) => [luma(rgb8(x, y))], 1, 255));

  const primaries: Pixel = (x) => [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]][x];
  const row = Array.from(decodePng(pngjsImage(2, 8, primaries), { channels: 1 }).data.slice(0, W));
  assertClose(row, [0.299, 0.587, 0.114, 1, 0]);

  const rgb = decodePng(pngjsImage(0, 8, grey8), { channels: 3 });
  assert.deepEqual(Array.from(rgb.data), nchw((x, y) => [grey8(x, y)[0], grey8(x, y)[0], grey8(x, y)[0]], 3, 255));
});

test('scale maps samples onto [lo, hi]; mean and std then normalise per channel', () => {
  const png = pngjsImage(2, 8, rgb8);
  const scaled = decodePng(png, { scale: [-1, 1] });
  assertClose(scaled.data, nchw(rgb8, 3, 255).map((v) => v * 2 - 1));
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const norm = decodePng(png, { mean, std });
  const hw = H * W;
  const channel = (i: number) => Math.floor(i / hw);
  assertClose(norm.data, nchw(rgb8, 3, 255).map((v, i) => (v - mean[channel(i)]) / std[channel(i)]), 1e-5);
  const byte = decodePng(png, { scale: [0, 255], mean: 128, std: 2 });
  assertClose(byte.data, nchw(rgb8, 3, 1).map((v) => (v - 128) / 2), 1e-5);
});

test('PNGs from an independent encoder (Python zlib/struct, Pillow) decode to their formulas', async () => {
  const read = async (name: string, opts = {}) => decodePng(await readFile(join(FIXTURES, name)), opts);

  const rgb = await read('rgb8.png'); // rows filtered None, Sub, Up
  const rgbPixel: Pixel = (x, y) => [(x * 50 + y * 3) % 256, (y * 60 + x * 7) % 256, (x * y * 13) % 256];
  assert.deepEqual(rgb.shape, [1, 3, 4, 5]);
  assert.deepEqual(Array.from(rgb.data), nchw(rgbPixel, 3, 255, 5, 4));

  const g16 = await read('grey16.png');
  assert.deepEqual(g16.shape, [1, 1, 3, 4]);
  assert.deepEqual(Array.from(g16.data), nchw((x, y) => [(x * 3 + y) * 5000 + 7], 1, 65535, 4, 3));

  const g1 = await read('grey1.png'); // 9 pixels a row: bits padded to the byte
  assert.deepEqual(g1.shape, [1, 1, 2, 9]);
  assert.deepEqual(Array.from(g1.data), nchw((x, y) => [(x + y) % 2], 1, 1, 9, 2));

  const palette = [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255], [10, 20, 30, 128]];
  const pal = await read('palette4.png', { channels: 4 }); // 4-bit indices, tRNS alpha
  assert.deepEqual(pal.shape, [1, 4, 2, 3]);
  assert.deepEqual(Array.from(pal.data), nchw((x, y) => palette[(x + 2 * y) % 4], 4, 255, 3, 2));

  const laPixel: Pixel = (x, y) => [(x * 40 + y) % 256, 255 - x * 30];
  const la = await read('la8.png'); // grey + alpha written by Pillow
  assert.deepEqual(la.shape, [1, 1, 3, 4]);
  assert.deepEqual(Array.from(la.data), nchw(laPixel, 1, 255, 4, 3));
  const laRgba = await read('la8.png', { channels: 4 });
  const [g, a] = [(x: number, y: number) => laPixel(x, y)[0], (x: number, y: number) => laPixel(x, y)[1]];
  assert.deepEqual(Array.from(laRgba.data), nchw((x, y) => [g(x, y), g(x, y), g(x, y), a(x, y)], 4, 255, 4, 3));
});

test('encodePng → decodePng is exact for values on the 8-bit and 16-bit grids', () => {
  for (const [bitDepth, top] of [[8, 255], [16, 65535]] as const) {
    for (const c of [1, 3, 4]) {
      const n = c * H * W;
      const t = Tensor.float32(Array.from({ length: n }, (_, i) => ((i * 7919) % (top + 1)) / top), [1, c, H, W]);
      const back = decodePng(encodePng(t, { range: [0, 1], bitDepth }), { channels: c as 1 | 3 | 4 });
      assert.deepEqual(back.shape, [1, c, H, W]);
      assert.deepEqual(Array.from(back.data), Array.from(t.data), `${c} channels at ${bitDepth} bits`);
    }
  }
});

test('encodePng accepts [H, W], [C, H, W] and channels-last tensors', () => {
  const hw = Tensor.float32(nchw(grey8, 1, 255), [H, W]);
  assert.deepEqual(Array.from(decodePng(encodePng(hw, { range: [0, 1] })).data), nchw(grey8, 1, 255));
  const chw = Tensor.float32(nchw(rgb8, 3, 255), [3, H, W]);
  assert.deepEqual(Array.from(decodePng(encodePng(chw, { range: [0, 1] })).data), nchw(rgb8, 3, 255));
  const nhwc = decodePng(pngjsImage(6, 8, rgba8), { channels: 4, layout: 'nhwc' });
  const back = decodePng(encodePng(nhwc, { range: [0, 1], layout: 'nhwc' }), { channels: 4 });
  assert.deepEqual(Array.from(back.data), nchw(rgba8, 4, 255));
});

test("encodePng spreads the tensor's own min..max by default, and clamps a given range", () => {
  const t = Tensor.float64([-2, -1, 0, 1, 2, 0.5], [2, 3]);
  const bytes = (png: Uint8Array) => Array.from(PNG.sync.read(Buffer.from(png)).data.filter((_, i) => i % 4 === 0));
  assert.deepEqual(bytes(encodePng(t)), [0, 64, 128, 191, 255, 159]);
  assert.deepEqual(bytes(encodePng(t, { range: [0, 1] })), [0, 0, 0, 255, 255, 128]);
  const odd = Tensor.float32([NaN, Infinity, -Infinity, 3, 3, 3], [2, 3]);
  assert.deepEqual(bytes(encodePng(odd)), [0, 255, 0, 0, 0, 0], 'NaN black, infinities clamped, constant black');
  const half = new Tensor('float16', new Uint16Array([0x0000, 0x3800, 0x3c00]), [1, 3]); // 0, 0.5, 1
  assert.deepEqual(bytes(encodePng(half)), [0, 128, 255]);
  assert.deepEqual(bytes(encodePng(Tensor.int64([0, 5, 10], [1, 3]))), [0, 128, 255]);
  assert.throws(() => encodePng(t, { range: [1, 0] }), /range must be finite with lo <= hi, got \[1, 0\]/);
});

test('encodePng names a shape it cannot encode', () => {
  const bad = (shape: number[], layout?: 'nhwc') => () => encodePng(Tensor.zeros('float32', shape), { layout });
  assert.throws(bad([2, 3, 4, 5]), /cannot encode shape \[2, 3, 4, 5\] as an image \(batch of 2\)/);
  assert.throws(bad([2, 5, 5]), /cannot encode shape \[2, 5, 5\] as an image \(2 channels\)/);
  assert.throws(bad([5, 5, 2], 'nhwc'), /shape \[5, 5, 2\] .*expected \[H, W\], \[H, W, C\] or \[1, H, W, C\]/);
  assert.throws(bad([7]), /cannot encode shape \[7\] as an image \(rank 1\)/);
  assert.throws(bad([0, 4]), /empty image/);
  assert.throws(() => encodePng(new Tensor('string', ['a'], [1, 1])), /string tensor/);
});

test('corrupt or truncated PNGs say so', () => {
  const png = pngjsImage(2, 8, rgb8);
  assert.throws(() => decodePng(new TextEncoder().encode('GIF89a not a png')), {
    message: 'decodePng: not a valid PNG: bad signature',
  });
  assert.throws(() => decodePng(png.subarray(0, png.length - 20)), {
    message: 'decodePng: not a valid PNG: truncated (chunk "IDAT" at byte 33 needs 8 more bytes)',
  });
  assert.throws(() => decodePng(png.subarray(0, png.length - 12)), {
    message: `decodePng: not a valid PNG: truncated (no IEND chunk; the file ends at byte ${png.length - 12})`,
  });
  const flipped = Uint8Array.from(png);
  flipped[20] ^= 0xff; // the height, inside IHDR
  assert.throws(() => decodePng(flipped), { message: 'decodePng: not a valid PNG: bad CRC in chunk "IHDR" at byte 8' });

  // IDAT bytes that are not zlib data, under a correct CRC (pngjs alone would decode this as a black image).
  const garbage = Uint8Array.from(png);
  const idatLength = new DataView(garbage.buffer).getUint32(33);
  garbage.fill(0xab, 41, 41 + idatLength);
  new DataView(garbage.buffer).setUint32(41 + idatLength, crc32(garbage.subarray(37, 41 + idatLength)));
  assert.throws(() => decodePng(garbage), {
    message: 'decodePng: not a valid PNG: corrupt image data (incorrect header check)',
  });
});

test('bytes after IEND are ignored', () => {
  const png = pngjsImage(0, 8, grey8);
  const padded = new Uint8Array(png.length + 5);
  padded.set(png);
  assert.deepEqual(Array.from(decodePng(padded).data), nchw(grey8, 1, 255));
});

test('decode options are checked', () => {
  const png = pngjsImage(2, 8, rgb8);
  assert.throws(() => decodePng(png, { mean: [0.5, 0.5] }), /mean has 2 values but the image has 3 channels/);
  assert.throws(() => decodePng(png, { std: [1, 0, 1] }), /std must be finite and non-zero/);
  assert.throws(() => decodePng(png, { channels: 2 as 1 }), /channels must be 1, 3 or 4, got 2/);
});

test('writePng and readPng round-trip through a file; errors name the path', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'glassbox-png-'));
  try {
    const path = join(dir, 'x.png');
    const t = decodePng(pngjsImage(2, 8, rgb8));
    await writePng(path, t, { range: [0, 1] });
    assert.deepEqual(Array.from((await readPng(path)).data), Array.from(t.data));
    const broken = join(dir, 'broken.png');
    await writeFile(broken, Buffer.from('not an image'));
    await assert.rejects(readPng(broken), { message: `readPng ${broken}: not a valid PNG: bad signature` });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
