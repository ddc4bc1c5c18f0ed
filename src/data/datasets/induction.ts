/**
 * The repeated-sequence induction task (Olsson et al. 2022, "In-context Learning and Induction Heads"): a segment of
 * L distinct random tokens followed by the same tokens again, after a prefix of 2·(half − L) other random tokens, so
 * every sequence s has 2·half tokens. L is drawn per example from [minHalf, half]: with one fixed L the repeat would
 * sit at a fixed offset and a head attending by position alone could copy it, with no induction. Inputs
 * x = s[0 .. 2·half − 1) and next-token targets y = s[1 .. 2·half), int64 [T] with T = 2·half − 1, the language-model
 * format of `languageModelDataset`. Targets of the second copy are predictable only by induction (find the earlier
 * occurrence of x[t], copy the token after it); `positions` lists those that are so in every example (the last
 * minHalf − 1). Example i is drawn from a generator seeded by (seed, i), so nothing is stored.
 *
 * `corrupted: true` gives, for the same i, the same second copy after a different prefix and first copy (no token of
 * the segment in them): the clean/corrupted pair of circuit analysis, where induction has nothing to copy.
 *
 * @example
 * const clean = inductionDataset({ size: 512, half: 10, vocab: 24, seed: 1 });
 * const corrupt = inductionDataset({ size: 512, half: 10, vocab: 24, seed: 1, corrupted: true });
 */
import { Tensor } from '../../runtime/tensor.js';
import { dataset, type Dataset } from './dataset.js';
import { mixSeed, mulberry32 } from './random.js';

export interface InductionOptions {
  readonly size: number;
  /** Half the sequence: the longest repeated segment (T = 2·half − 1). */
  readonly half: number;
  /** The shortest repeated segment (default ⌈half / 2⌉). */
  readonly minHalf?: number;
  readonly vocab: number;
  readonly seed: number;
  /** The first half replaced by other tokens (none from the second half). */
  readonly corrupted?: boolean;
}

export interface InductionDataset extends Dataset<'int64'> {
  readonly half: number;
  /** Positions whose target only induction predicts, in every example: the last minHalf − 1. */
  readonly positions: readonly number[];
  /** The segment length L of example i. */
  period(i: number): number;
}

/** Positions t of x whose target repeats an earlier token in every example: 2·half − minHalf .. 2·half − 2. */
export function inductionPositions(half: number, minHalf: number): number[] {
  return Array.from({ length: minHalf - 1 }, (_, i) => 2 * half - minHalf + i);
}

/** `k` distinct tokens from [0, vocab) not in `avoid`, in random order. */
function draw(rand: () => number, vocab: number, k: number, avoid: ReadonlySet<number>): number[] {
  const pool = Array.from({ length: vocab }, (_, i) => i).filter((v) => !avoid.has(v));
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, k);
}

export function inductionDataset(options: InductionOptions): InductionDataset {
  const { size, half, vocab, seed, corrupted = false } = options;
  const minHalf = options.minHalf ?? Math.ceil(half / 2);
  const name = `induction${corrupted ? '-corrupted' : ''}`;
  if (!Number.isInteger(size) || size < 1) throw new Error(`${name}: size must be a positive integer, got ${size}`);
  if (!Number.isInteger(half) || half < 2) throw new Error(`${name}: half must be an integer ≥ 2, got ${half}`);
  if (!Number.isInteger(minHalf) || minHalf < 2 || minHalf > half) throw new Error(`${name}: minHalf must be an integer in [2, ${half}], got ${minHalf}`);
  // Distinct tokens: prefix and segment (2·half − L ≤ 2·half − minHalf), plus a disjoint corrupted prefix and copy.
  const need = 2 * half - minHalf + (corrupted ? 2 * half - minHalf : 0);
  if (!Number.isInteger(vocab) || vocab < need) throw new Error(`${name}: vocab ${vocab} is too small: ${need} distinct tokens needed`);
  const period = (i: number) => minHalf + Math.floor(mulberry32(mixSeed(seed, i, 2))() * (half - minHalf + 1));
  const T = 2 * half - 1;
  const ds = dataset({
    name,
    size,
    inputShape: [T],
    inputDType: 'int64',
    targetShape: [T],
    numClasses: vocab,
    gather: (ix) => {
      const x = new BigInt64Array(ix.length * T); // [B, T]
      const y = new BigInt64Array(ix.length * T);
      for (let b = 0; b < ix.length; b++) {
        const L = period(ix[b]);
        const p = 2 * (half - L);
        const clean = draw(mulberry32(mixSeed(seed, ix[b])), vocab, p + L, new Set()); // prefix, segment
        const segment = clean.slice(p);
        const head = corrupted ? draw(mulberry32(mixSeed(seed, ix[b], 1)), vocab, p + L, new Set(clean)) : clean;
        const s = [...head, ...segment];
        for (let j = 0; j < T; j++) {
          x[b * T + j] = BigInt(s[j]);
          y[b * T + j] = BigInt(s[j + 1]);
        }
      }
      return { x: new Tensor('int64', x, [ix.length, T]), y: new Tensor('int64', y, [ix.length, T]) };
    },
  });
  return {
    ...ds,
    half,
    positions: inductionPositions(half, minHalf),
    period(i: number): number {
      if (!(Number.isInteger(i) && i >= 0 && i < size)) throw new Error(`${name}: example ${i} out of range [0, ${size})`);
      return period(i);
    },
  };
}
