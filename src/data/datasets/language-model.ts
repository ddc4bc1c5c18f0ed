/**
 * Next-token prediction over one stream of token ids: example i is the window starting at t = i·stride, with
 * x = ids[t .. t+T) and y = ids[t+1 .. t+T+1), both int64 [T] (batched [B, T]). Windows are cut per batch, so
 * memory is the stream itself (4 bytes per token).
 *
 * Positions line up with the stream: x[b, j] is stream position `windowStart(indices[b]) + j`. For a word-level
 * Brown stream that is the corpus token index, so each position's POS tag is `brown.tagIds[...]` (for probes).
 *
 * @example
 * const { text } = brown.text();
 * const chars = Vocabulary.build(text);
 * const lm = languageModelDataset(chars.encode(text), { context: 128, vocabulary: chars, name: 'brown-chars' });
 * for (const { x, y } of lm.batches(32, { shuffle: true, seed: 0 })) { ... } // x, y: int64 [32×128]
 */

import { Tensor } from '../../runtime/tensor.js';
import { Dataset, dataset } from './dataset.js';
import { Vocabulary } from './vocab.js';

export interface LanguageModelOptions {
  /** Window length T. */
  readonly context: number;
  /** Distance between window starts (default T: inputs tile the stream; smaller overlaps them). */
  readonly stride?: number;
  /** Gives numClasses and classNames; otherwise numClasses is the largest id + 1. */
  readonly vocabulary?: Vocabulary;
  readonly name?: string;
}

export interface LanguageModelDataset extends Dataset<'int64'> {
  readonly context: number;
  readonly stride: number;
  /** Stream position of example i's first input token. */
  windowStart(i: number): number;
}

export function languageModelDataset(stream: Int32Array, options: LanguageModelOptions): LanguageModelDataset {
  const { context: T, stride = options.context, vocabulary, name = 'language-model' } = options;
  if (!Number.isInteger(T) || T < 1) throw new Error(`${name}: context must be a positive integer, got ${T}`);
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`${name}: stride must be a positive integer, got ${stride}`);
  let max = -1;
  for (let i = 0; i < stream.length; i++) {
    if (stream[i] < 0) throw new Error(`${name}: negative token id ${stream[i]} at position ${i}`);
    if (stream[i] > max) max = stream[i];
  }
  if (vocabulary && max >= vocabulary.size) {
    throw new Error(`${name}: token id ${max} is outside the vocabulary of ${vocabulary.size}`);
  }
  const size = stream.length > T ? Math.floor((stream.length - T - 1) / stride) + 1 : 0;
  const ds = dataset({
    name,
    size,
    inputShape: [T],
    inputDType: 'int64',
    targetShape: [T],
    numClasses: vocabulary?.size ?? max + 1,
    classNames: vocabulary?.tokens,
    gather: (ix) => {
      const x = new BigInt64Array(ix.length * T); // [B, T]
      const y = new BigInt64Array(ix.length * T);
      for (let b = 0; b < ix.length; b++) {
        const t = ix[b] * stride;
        for (let j = 0; j < T; j++) {
          x[b * T + j] = BigInt(stream[t + j]);
          y[b * T + j] = BigInt(stream[t + j + 1]);
        }
      }
      return { x: new Tensor('int64', x, [ix.length, T]), y: new Tensor('int64', y, [ix.length, T]) };
    },
  });
  return {
    ...ds,
    context: T,
    stride,
    windowStart(i: number): number {
      if (!(Number.isInteger(i) && i >= 0 && i < size)) throw new Error(`${name}: example ${i} out of range [0, ${size})`);
      return i * stride;
    },
  };
}
