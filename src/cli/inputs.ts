/** Reading `--input NAME=FILE` values: a .npy file as it is, a PNG decoded to the layout the model input declares. */
import { readFile } from 'node:fs/promises';
import { decodePng, parseNpy, type Tensor, type ValueInfo } from '../index.js';
import { unknownNameError } from '../util/nearest.js';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

const startsWith = (bytes: Uint8Array, magic: readonly number[]) => magic.every((b, i) => bytes[i] === b);

async function readBytes(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${file}: no such file` : code === 'EISDIR' ? `${file}: is a directory` : `${file}: ${(e as Error).message}`);
  }
}

/**
 * How a PNG becomes this input: channels from a rank-4 declared shape, [N, C, H, W] when C is 1, 3 or 4 there,
 * else [N, H, W, C] when the last dim is; otherwise decodePng's defaults (grey 1, colour 3, NCHW).
 */
function pngLayout(input: ValueInfo): { channels?: 1 | 3 | 4; layout?: 'nchw' | 'nhwc' } {
  const s = input.shape;
  const isChannels = (d: unknown): d is 1 | 3 | 4 => d === 1 || d === 3 || d === 4;
  if (!s || s.length !== 4) return {};
  if (isChannels(s[1])) return { channels: s[1], layout: 'nchw' };
  if (isChannels(s[3])) return { channels: s[3], layout: 'nhwc' };
  return {};
}

/** Reads the tensor for model input `name` from `file` (.npy or PNG, told apart by their first bytes). */
export async function readInput(inputs: readonly ValueInfo[], name: string, file: string): Promise<Tensor> {
  const input = inputs.find((i) => i.name === name);
  if (!input) throw unknownNameError('input', name, inputs.map((i) => i.name));
  const bytes = await readBytes(file);
  try {
    if (startsWith(bytes, NPY_MAGIC)) return parseNpy(bytes);
    if (startsWith(bytes, PNG_MAGIC)) return decodePng(bytes, pngLayout(input));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  throw new Error(`${file}: neither a .npy file nor a PNG image`);
}
