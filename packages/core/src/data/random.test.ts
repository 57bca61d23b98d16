import { describe, expect, it } from 'vitest';
import { mix32, randomBelow, splitmix32 } from './random.js';

describe('splitmix32', () => {
  it('is reproducible from its seed and differs between seeds', () => {
    const draw = (seed: number) => Array.from({ length: 8 }, splitmix32(seed));
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    for (const value of draw(7)) expect(Number.isInteger(value) && value >= 0 && value < 2 ** 32).toBe(true);
  });

  it('maps distinct inputs to distinct outputs', () => {
    expect(new Set([0, 1, 2, 3].map(mix32)).size).toBe(4);
  });
});

describe('randomBelow', () => {
  it('stays in range and hits every value', () => {
    const next = splitmix32(1);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const value = randomBelow(next, 7);
      expect(value >= 0 && value < 7 && Number.isInteger(value)).toBe(true);
      seen.add(value);
    }
    expect(seen.size).toBe(7);
  });

  it('redraws values in the ragged top of the uint32 range instead of folding them (no modulo bias)', () => {
    // For bound 3, 2^32 % 3 = 1, so only 2^32 - 1 is rejected.
    const draws = [2 ** 32 - 1, 5];
    expect(randomBelow(() => draws.shift() ?? 0, 3)).toBe(5 % 3);
    expect(draws).toEqual([]);
  });

  it('accepts the full 2^32 bound', () => {
    expect(randomBelow(() => 2 ** 32 - 1, 2 ** 32)).toBe(2 ** 32 - 1);
  });
});
