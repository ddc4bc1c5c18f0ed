/** Paths and small numeric helpers shared by the tests (compiled to build/test/, so the repo root is three levels up). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundledModels } from '../src/data/bundled.js';
import { parseNpy } from '../src/data/npy.js';
import type { Tensor } from '../src/runtime/tensor.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TORCH = join(ROOT, 'fixtures', 'torch');

export function torchFixture(name: 'mlp' | 'cnn' | 'resnet18' | 'gpt'): { path: string; input: Tensor; output: Tensor } {
  return {
    path: join(TORCH, `${name}.onnx`),
    input: parseNpy(readFileSync(join(TORCH, `${name}.input.npy`))),
    output: parseNpy(readFileSync(join(TORCH, `${name}.output.npy`))),
  };
}

export const PADDLE_CLS = bundledModels.paddleCls;
export const PADDLE_REC = bundledModels.paddleRec;

export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (a.size !== b.size) throw new Error(`sizes differ: ${a} vs ${b}`);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(a.at(i) - b.at(i)));
  return m;
}

/** Number of elements whose bits differ (NaN equal to NaN). */
export function bitMismatches(a: Tensor, b: Tensor): number {
  if (a.size !== b.size || a.dtype !== b.dtype) return Math.max(a.size, b.size);
  let n = 0;
  for (let i = 0; i < a.size; i++) {
    const x = a.data[i];
    const y = b.data[i];
    if (x !== y && !(Number.isNaN(x) && Number.isNaN(y))) n++;
  }
  return n;
}

/** The project's seeded stream (mulberry32), so tests need no fixtures for random inputs. */
export { mulberry32 as seeded } from '../src/data/datasets/random.js';
