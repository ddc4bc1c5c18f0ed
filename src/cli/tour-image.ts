/**
 * The tour's input: a synthetic line of text drawn from a tiny bitmap font, and its 180° rotation, prepared as
 * PaddleOCR prepares a crop for its direction classifier (height 48, values (v - 0.5) / 0.5, the width padded with
 * zeros to 192 on the right). Deterministic: no randomness, no files.
 */
import { Tensor } from '../index.js';

/** Lowercase glyphs, 5 wide by 9 tall: rows 0–1 ascender, 2–6 x-height, 7–8 descender. */
const FONT: Record<string, readonly string[]> = {
  b: ['#....', '#....', '####.', '#...#', '#...#', '#...#', '####.', '.....', '.....'],
  l: ['.##..', '..#..', '..#..', '..#..', '..#..', '..#..', '.###.', '.....', '.....'],
  o: ['.....', '.....', '.###.', '#...#', '#...#', '#...#', '.###.', '.....', '.....'],
};

const GLYPH_W = 5;
const GLYPH_H = 9;
const PAPER = 0.9;
const INK = 0.1;

export interface TextLine {
  /** [2, 3, height, width]: row 0 the upright line, row 1 the same crop rotated by 180°. */
  readonly batch: Tensor<'float32'>;
  readonly text: string;
  /** Width of the text crop before padding. */
  readonly cropWidth: number;
}

/** Grey crop of `text` at `scale` pixels per font cell, [height, w] row-major, values in [0, 1]. */
function drawCrop(text: string, scale: number, height: number): { pixels: Float32Array; width: number } {
  const advance = (GLYPH_W + 1) * scale;
  const margin = scale;
  const width = text.length * advance - scale + 2 * margin;
  const top = Math.floor((height - GLYPH_H * scale) / 2);
  const pixels = new Float32Array(height * width).fill(PAPER);
  for (let y = 0; y < height; y++) {
    const row = Math.floor((y - top) / scale);
    if (y < top || row >= GLYPH_H) continue;
    for (let x = margin; x < width - margin; x++) {
      const glyph = FONT[text[Math.floor((x - margin) / advance)]];
      const col = Math.floor(((x - margin) % advance) / scale);
      if (glyph && col < GLYPH_W && glyph[row][col] === '#') pixels[y * width + x] = INK;
    }
  }
  return { pixels, width };
}

/** The upright and the rotated line as one normalised batch of three identical grey channels. */
export function textLine(text = 'blob', scale = 4, height = 48, width = 192): TextLine {
  for (const ch of text) if (!FONT[ch]) throw new Error(`textLine: no glyph for '${ch}'`);
  const crop = drawCrop(text, scale, height);
  if (crop.width > width) throw new Error(`textLine: '${text}' at scale ${scale} is ${crop.width} px wide, more than ${width}`);
  const plane = height * width;
  const data = new Float32Array(2 * 3 * plane); // [2, 3, H, W], zero (the padding value) beyond the crop
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < crop.width; x++) {
      const upright = crop.pixels[y * crop.width + x];
      const rotated = crop.pixels[(height - 1 - y) * crop.width + (crop.width - 1 - x)];
      for (let c = 0; c < 3; c++) {
        data[c * plane + y * width + x] = (upright - 0.5) / 0.5;
        data[(3 + c) * plane + y * width + x] = (rotated - 0.5) / 0.5;
      }
    }
  }
  return { batch: new Tensor('float32', data, [2, 3, height, width]), text, cropWidth: crop.width };
}
