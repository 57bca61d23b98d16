/** Helpers shared by the optimizer tests (not part of the public API). */
import { expect } from 'vitest';
import type { ErrorCode } from '../errors.js';
import type { Optimizer } from './optimizer.js';

/** A matcher for `toThrow`: a CallosumError with `code` whose message contains every fragment. */
export function callosumError(code: ErrorCode, ...messageFragments: string[]): unknown {
  return expect.objectContaining({
    name: 'CallosumError',
    code,
    message: expect.stringMatching(new RegExp(messageFragments.map(escapeRegExp).join('.*'))),
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** mulberry32: a tiny seeded generator, so every run of a test sees the same numbers. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export function uniformVector(random: () => number, length: number, min: number, max: number): Float32Array {
  return Float32Array.from({ length }, () => min + (max - min) * random());
}

/**
 * Gradient-like values: a random sign times a magnitude spread log-uniformly over [1e-8, 1], so some
 * elements are small enough for Adam's epsilon to matter and its placement is tested too.
 */
export function gradientVectors(random: () => number, length: number, count: number): Float32Array[] {
  return Array.from({ length: count }, () =>
    Float32Array.from({ length }, () => (random() < 0.5 ? -1 : 1) * 10 ** (-8 * random())),
  );
}

/** Applies `gradients` one step each, at a constant learning rate, to a copy of `initialParams`. */
export function runSteps(
  optimizer: Optimizer,
  initialParams: Float32Array,
  gradients: readonly Float32Array[],
  learningRate: number,
): Float32Array {
  const params = initialParams.slice();
  for (const gradient of gradients) {
    optimizer.step(params, gradient, learningRate);
  }
  return params;
}

/**
 * max_i |actual_i - expected_i| / max(|expected_i|, 0.1).
 *
 * Parameters start uniform in [-1, 1). For elements of that size this is the plain relative error. An
 * element that ends up near 0 got there by cancellation, and the float32 rounding it carries is set by
 * the size of the operands (about the parameter scale, 0.1 to 1), not by the small result; dividing by
 * the tiny result would report that rounding as a huge error. So below 0.1 the absolute error is judged
 * against the parameter scale instead.
 */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const want = expected[i] as number;
    worst = Math.max(worst, Math.abs((actual[i] as number) - want) / Math.max(Math.abs(want), 0.1));
  }
  return worst;
}
