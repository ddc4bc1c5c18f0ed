/** Writing tensors as `DIR/<name>.npy` with safe, unique file names, and the `index.json` that maps them back. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeNpy, type Tensor } from '../index.js';
import { toJson } from './format.js';

/** What one written file holds. */
export interface Written {
  readonly file: string;
  readonly kind: 'output' | 'site';
  /** The output name, or the site alias. */
  readonly name: string;
  /** The site's raw value name in the graph (sites only). */
  readonly value?: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

/** A file name from a tensor name: characters outside [A-Za-z0-9._-] become '_', and no name is hidden or '..'. */
export function safeFileName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_');
  return s === '' || s.startsWith('.') ? `_${s}` : s;
}

/** Collects tensors under unique file names, then writes them all with the index. */
export class OutputDir {
  private readonly entries: { written: Written; tensor: Tensor }[] = [];
  private readonly taken = new Set<string>(['index.json']);

  constructor(readonly dir: string) {}

  add(kind: Written['kind'], name: string, tensor: Tensor, value?: string): void {
    const base = safeFileName(name);
    let file = `${base}.npy`;
    for (let i = 2; this.taken.has(file.toLowerCase()); i++) file = `${base}_${i}.npy`;
    this.taken.add(file.toLowerCase());
    this.entries.push({ written: { file, kind, name, ...(value !== undefined && value !== name ? { value } : {}), dtype: tensor.dtype, shape: tensor.shape }, tensor });
  }

  async write(): Promise<Written[]> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (e) {
      throw new Error(`--out ${this.dir}: cannot create the directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    for (const { written, tensor } of this.entries) {
      let bytes: Uint8Array;
      try {
        bytes = encodeNpy(tensor);
      } catch (e) {
        throw new Error(`${written.kind} '${written.name}': ${(e as Error).message}`);
      }
      await writeFile(join(this.dir, written.file), bytes);
    }
    const index = Object.fromEntries(this.entries.map(({ written: { file, ...rest } }) => [file, rest]));
    await writeFile(join(this.dir, 'index.json'), `${toJson(index)}\n`);
    return this.entries.map((e) => e.written);
  }
}
