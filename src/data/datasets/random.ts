/**
 * Seeded randomness for data order: a small deterministic PRNG, so the same seed gives the same shuffle on every
 * machine and in every runtime (integer arithmetic only; no Math.random).
 */

/**
 * mulberry32 (Tommy Ettinger, public domain): a 32-bit state generator returning floats in [0, 1) with 32 random bits.
 * Plenty for shuffling and sampling; not for cryptography.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes several integers into one 32-bit seed (so seed 1 epoch 2 and seed 2 epoch 1 differ). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    if (!Number.isSafeInteger(p)) throw new Error(`mixSeed: seed parts must be integers, got ${p}`);
    h = Math.imul(h ^ (p >>> 0) ^ Math.floor(p / 4294967296), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** Shuffles `a` in place (Fisher–Yates) with the given generator, and returns it. */
export function shuffleInPlace<A extends { length: number; [i: number]: number }>(a: A, rand: () => number): A {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** 0..n-1 in an order fixed by `seed`. */
export function permutation(n: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return shuffleInPlace(out, mulberry32(seed));
}
