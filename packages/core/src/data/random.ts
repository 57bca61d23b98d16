/**
 * A small seeded PRNG for reproducible shuffling: splitmix32, i.e. a 32-bit Weyl sequence (state advances
 * by the golden-ratio constant 0x9e3779b9) whose every value is passed through the murmur3 fmix32 finalizer.
 * Not for cryptography.
 */

const GOLDEN_RATIO_32 = 0x9e3779b9;

/** murmur3's fmix32: a bijective avalanche on 32-bit integers. */
export function mix32(value: number): number {
  let z = value >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A generator of uniform uint32 values, fully determined by the 32-bit `seed`. */
export function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + GOLDEN_RATIO_32) >>> 0;
    return mix32(state);
  };
}

/** A uniform integer in 0..bound-1 (1 <= bound <= 2^32), without modulo bias: draws in the ragged top are redrawn. */
export function randomBelow(nextUint32: () => number, bound: number): number {
  const unbiasedLimit = 2 ** 32 - (2 ** 32 % bound);
  let draw = nextUint32();
  while (draw >= unbiasedLimit) draw = nextUint32();
  return draw % bound;
}
