import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { randomBelow, splitmix32 } from './random.js';
import { cutIntoShards, evenShardSizes, proportionalShardSizes } from './shards.js';

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);
const expectInvalidArgument = expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT });
const TRIALS = 2000;

describe('evenShardSizes', () => {
  it('gives the larger shards first', () => {
    expect(evenShardSizes(10, 3)).toEqual([4, 3, 3]);
    expect(evenShardSizes(64, 4)).toEqual([16, 16, 16, 16]);
    expect(evenShardSizes(2, 4)).toEqual([1, 1, 0, 0]);
    expect(evenShardSizes(0, 2)).toEqual([0, 0]);
  });

  it('sums to the total with sizes differing by at most 1, non-increasing, over random inputs', () => {
    const next = splitmix32(11);
    for (let trial = 0; trial < TRIALS; trial++) {
      const total = randomBelow(next, 1000);
      const parts = 1 + randomBelow(next, 20);
      const sizes = evenShardSizes(total, parts);
      expect(sizes.length).toBe(parts);
      expect(sum(sizes)).toBe(total);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      expect([...sizes].sort((a, b) => b - a)).toEqual(sizes);
    }
  });

  it('rejects a negative total and zero parts', () => {
    expect(() => evenShardSizes(-1, 2)).toThrow(expectInvalidArgument);
    expect(() => evenShardSizes(10, 0)).toThrow(expectInvalidArgument);
  });
});

describe('proportionalShardSizes', () => {
  it('rounds by largest remainder, ties to the earlier shard', () => {
    expect(proportionalShardSizes(100, [3, 1])).toEqual([75, 25]);
    expect(proportionalShardSizes(7, [0.5, 0.25, 0.25])).toEqual([3, 2, 2]);
    expect(proportionalShardSizes(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(proportionalShardSizes(3, [1, 0, 1])).toEqual([2, 0, 1]);
  });

  it('sums to the total, stays within 1 of each exact share, and matches even sizes for equal weights', () => {
    const next = splitmix32(12);
    for (let trial = 0; trial < TRIALS; trial++) {
      const total = randomBelow(next, 1000);
      const parts = 1 + randomBelow(next, 12);
      // Some weights zero, some tiny, some large: like measured speeds including a stalled worker.
      const weights = Array.from({ length: parts }, () =>
        randomBelow(next, 4) === 0 ? 0 : (1 + randomBelow(next, 1_000_000)) / 1000,
      );
      if (sum(weights) === 0) weights[0] = 1;
      const sizes = proportionalShardSizes(total, weights);
      expect(sum(sizes)).toBe(total);
      sizes.forEach((size, i) => {
        const share = (total * (weights[i] ?? 0)) / sum(weights);
        expect(Number.isInteger(size)).toBe(true);
        expect(Math.abs(size - share)).toBeLessThan(1);
        if (weights[i] === 0) expect(size).toBe(0);
      });
      const equal = new Array<number>(parts).fill(1 + randomBelow(next, 50));
      expect(proportionalShardSizes(total, equal)).toEqual(evenShardSizes(total, parts));
    }
  });

  it.each([[[]], [[0, 0]], [[1, -1]], [[1, Number.NaN]], [[1, Number.POSITIVE_INFINITY]]])(
    'rejects weights %o',
    (weights) => {
      expect(() => proportionalShardSizes(10, weights)).toThrow(expectInvalidArgument);
    },
  );
});

describe('cutIntoShards', () => {
  it('cuts contiguous, in-order views that cover the batch, for any sizes', () => {
    const next = splitmix32(13);
    for (let trial = 0; trial < TRIALS; trial++) {
      const batch = Uint32Array.from({ length: randomBelow(next, 200) }, (_, i) => i * 3);
      // A random composition of the batch length, zero sizes included.
      const cuts = Array.from({ length: randomBelow(next, 6) }, () => randomBelow(next, batch.length + 1));
      const bounds = [0, ...cuts.sort((a, b) => a - b), batch.length];
      const sizes = bounds.slice(1).map((bound, i) => bound - (bounds[i] ?? 0));
      const shards = cutIntoShards(batch, sizes);
      expect(shards.map((shard) => shard.length)).toEqual(sizes);
      expect(shards.flatMap((shard) => Array.from(shard))).toEqual(Array.from(batch));
      let offset = 0;
      for (const shard of shards) {
        expect(shard.buffer).toBe(batch.buffer);
        expect(shard.byteOffset).toBe(batch.byteOffset + offset * Uint32Array.BYTES_PER_ELEMENT);
        offset += shard.length;
      }
    }
  });

  it('works on any subarray-able type, e.g. pixel rows', () => {
    const pixels = Float32Array.of(0.1, 0.2, 0.3);
    expect(cutIntoShards(pixels, [1, 0, 2]).map((shard) => Array.from(shard))).toEqual([
      [Math.fround(0.1)],
      [],
      [Math.fround(0.2), Math.fround(0.3)],
    ]);
  });

  it('rejects sizes that do not sum to the batch length or are not counts', () => {
    const batch = new Uint32Array(10);
    expect(() => cutIntoShards(batch, [4, 5])).toThrow(
      expect.objectContaining({
        code: ErrorCodes.INVALID_ARGUMENT,
        message: 'cutIntoShards: shard sizes sum to 9 but the batch has 10 items',
      }),
    );
    expect(() => cutIntoShards(batch, [11, -1])).toThrow(expectInvalidArgument);
    expect(() => cutIntoShards(batch, [5.5, 4.5])).toThrow(expectInvalidArgument);
  });
});
