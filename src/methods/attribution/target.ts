/**
 * What an attribution explains: one scalar per example, score_i = Σ output_i ⊙ seed_i. A class index (one for all,
 * or one per example), the predicted class (default), or any seed over any output (a custom scalar). For an output
 * [N, T, C] (a language model) a class is read at the last position.
 */
import type { Tensor } from '../../runtime/tensor.js';
import { Tensor as T } from '../../runtime/tensor.js';

export type Target = number | readonly number[] | 'predicted' | { readonly output?: string; readonly seed: Tensor };

export interface ResolvedTarget {
  readonly output: string;
  /** [N, ...output shape without batch]: the weights of the score. */
  readonly seed: Tensor<'float32'>;
  readonly classes: Int32Array | null;
}

export function resolveTarget(target: Target | undefined, outputs: Readonly<Record<string, Tensor>>, defaultOutput: string, n: number): ResolvedTarget {
  if (typeof target === 'object' && target !== null && !Array.isArray(target) && 'seed' in target) {
    const output = target.output ?? defaultOutput;
    const out = outputs[output];
    if (!out) throw new Error(`target: the model has no output '${output}' (outputs: ${Object.keys(outputs).join(', ')})`);
    const seed = target.seed;
    if (seed.dtype !== 'float32' || seed.shape.join() !== out.shape.join()) {
      throw new Error(`target: the seed must be float32 [${out.shape.join(', ')}] like output '${output}', got ${seed.dtype} [${seed.shape.join(', ')}]`);
    }
    return { output, seed: seed as Tensor<'float32'>, classes: null };
  }
  const out = outputs[defaultOutput];
  if (out.dtype !== 'float32') throw new Error(`target: output '${defaultOutput}' is ${out.dtype}; class targets need float32 scores`);
  if (out.rank < 2 || out.rank > 3 || out.shape[0] !== n) {
    throw new Error(`target: a class target needs an output [N, C] or [N, T, C] with N = ${n}, '${defaultOutput}' is [${out.shape.join(', ')}]; pass { seed } for any other scalar`);
  }
  const C = out.shape[out.rank - 1];
  const row = out.size / n;
  const at = row - C; // offset of the class row within an example: the last position
  const classes = new Int32Array(n);
  if (target === undefined || target === 'predicted') {
    const d = out.data as Float32Array;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < C; c++) if (d[i * row + at + c] > d[i * row + at + best]) best = c;
      classes[i] = best;
    }
  } else if (typeof target === 'number') {
    classes.fill(target);
  } else if (Array.isArray(target)) {
    if (target.length !== n) throw new Error(`target: ${target.length} classes for ${n} examples`);
    classes.set(target as readonly number[]);
  } else {
    throw new Error(`target: expected a class index, an array of them, 'predicted' or { seed }, got ${JSON.stringify(target)}`);
  }
  for (let i = 0; i < n; i++) {
    const c = Array.isArray(target) ? (target as readonly number[])[i] : typeof target === 'number' ? target : classes[i];
    if (!(Number.isInteger(c) && c >= 0 && c < C)) throw new Error(`target: class ${c} of example ${i} is outside [0, ${C}) of output '${defaultOutput}'`);
  }
  const seed = T.zeros('float32', out.shape);
  for (let i = 0; i < n; i++) seed.data[i * row + at + classes[i]] = 1;
  return { output: defaultOutput, seed, classes };
}
