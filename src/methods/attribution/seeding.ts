/**
 * Per-example random streams for sampling methods: each example's draws come from the user's seed mixed with a hash
 * of the example's own values, so a result is the same whether the example is explained alone or in a batch, in any
 * position (batch invariance), and the same seed always gives the same bits (determinism).
 */
import { mixSeed, mulberry32 } from '../../data/datasets/random.js';

/** FNV-1a over the float32 bits of one example. */
export function hashValues(values: Float32Array): number {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let h = 0x811c9dc5;
  for (const b of bits) {
    h = Math.imul(h ^ (b & 0xffff), 0x01000193);
    h = Math.imul(h ^ (b >>> 16), 0x01000193);
  }
  return h >>> 0;
}

/** The random stream of one example under a seed. */
export function exampleRandom(seed: number, example: Float32Array): () => number {
  return mulberry32(mixSeed(seed, hashValues(example)));
}

/** A standard normal draw (Box–Muller). */
export function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}
