import { describe, expect, it } from 'vitest';
import type { GradientResult } from './batch.js';
import { assertFiniteShard, OrderedGradientSum, reduceShardGradients } from './reduce.js';

function shard(values: number[], count: number, lossSum = count, correct = 0): GradientResult {
  return { gradient: Float32Array.from(values), lossSum, correct, metricSums: [], count };
}

/** The mean the spec asks for: float64 sum in shard order, times 1 / global count, then float32. */
function expectedMean(shards: GradientResult[]): Float32Array {
  const count = shards.reduce((sum, s) => sum + s.count, 0);
  const first = shards[0] as GradientResult;
  return Float32Array.from(
    first.gradient,
    (_, i) => shards.reduce((sum, s) => sum + (s.gradient[i] as number), 0) * (1 / count),
  );
}

describe('OrderedGradientSum', () => {
  // Values whose float32 sums depend on the order: large and small magnitudes mixed.
  const shards = [
    shard([1e20, 0.1, -3], 3, 1.5, 2),
    shard([1, -1e20, 2.5e-8], 2, 0.5, 1),
    shard([-1e20, 1e20, 7], 4, 2, 4),
  ];

  it('gives the same mean whatever order the shards arrive in', () => {
    const sum = new OrderedGradientSum(3);
    const expected = expectedMean(shards);
    for (const order of [
      [0, 1, 2],
      [2, 1, 0],
      [1, 2, 0],
      [0, 2, 1],
    ]) {
      sum.begin(3);
      for (const index of order) sum.add(index, shards[index] as GradientResult);
      const reduced = sum.reduce();
      expect(Array.from(reduced.meanGradient)).toEqual(Array.from(expected));
      expect(reduced).toMatchObject({ lossSum: 4, correct: 7, count: 9 });
    }
  });

  it('starts each step afresh: nothing from the previous step leaks into the next', () => {
    const sum = new OrderedGradientSum(3);
    sum.begin(3);
    for (const [index, s] of shards.entries()) sum.add(index, s);
    sum.begin(1);
    sum.add(0, shard([2, 4, 6], 2));
    expect(Array.from(sum.reduce().meanGradient)).toEqual([1, 2, 3]);
    expect(sum.reduce()).toMatchObject({ count: 2, correct: 0 });
  });

  it('refuses shards it does not await and a reduce before every shard is in', () => {
    const sum = new OrderedGradientSum(3);
    sum.begin(2);
    expect(() => sum.add(2, shards[0] as GradientResult)).toThrow(/shard 2 is not awaited/);
    sum.add(1, shards[1] as GradientResult);
    expect(() => sum.add(1, shards[1] as GradientResult)).toThrow(/shard 1 is not awaited/);
    expect(() => sum.reduce()).toThrow(/only 0 of 2 shards/);
    expect(() => sum.begin(0)).toThrow(/at least one shard/);
  });

  it('reduceShardGradients checks every shard for NaN and Infinity first', () => {
    expect(() => reduceShardGradients([shards[0] as GradientResult, shard([1, Number.NaN, 0], 1)])).toThrow(
      /shard 1: gradient\[1\] is NaN/,
    );
    expect(Array.from(reduceShardGradients(shards).meanGradient)).toEqual(Array.from(expectedMean(shards)));
  });

  it('assertFiniteShard finds a bad value anywhere, and names it', () => {
    for (const [position, bad] of [
      [0, Number.NaN],
      [2, Number.POSITIVE_INFINITY],
      [5, Number.NEGATIVE_INFINITY],
      [6, Number.NaN],
    ] as const) {
      const values = [1, -2, 3e38, -3e38, 0, 1e-45, 7];
      values[position] = bad;
      expect(() => assertFiniteShard(shard(values, 1), 4, 7)).toThrow(
        `shard 4: gradient[${position}] is ${bad}`,
      );
    }
    expect(() => assertFiniteShard(shard([1, -2, 3e38, -3e38, 0, 1e-45, 7], 1), 0, 7)).not.toThrow();
    expect(() => assertFiniteShard(shard([1], 1, Number.NaN), 0, 1)).toThrow(/loss is NaN/);
    expect(() => assertFiniteShard(shard([1], 1), 0, 2)).toThrow(/1 elements, expected 2/);
  });
});
