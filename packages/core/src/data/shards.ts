/**
 * Splitting one global batch among workers: choosing shard sizes and cutting the batch into contiguous,
 * in-order shards of those sizes.
 */
import { CallosumError, ErrorCodes } from '../errors.js';
import { requireIntegerInRange } from './checks.js';

/** Anything that can be cut without copying: typed arrays, Buffers. */
export interface Sliceable<T> {
  readonly length: number;
  subarray(start: number, end: number): T;
}

/** `parts` sizes summing to `total` that differ by at most 1, larger ones first (zeros when parts > total). */
export function evenShardSizes(total: number, parts: number): number[] {
  requireIntegerInRange('evenShardSizes: total', total, 0);
  requireIntegerInRange('evenShardSizes: parts', parts, 1);
  const base = Math.floor(total / parts);
  const remainder = total % parts;
  return Array.from({ length: parts }, (_, i) => (i < remainder ? base + 1 : base));
}

/** Items [start, end) of a batch, meant for worker slot `part`. */
export interface ShardRange {
  readonly start: number;
  readonly end: number;
  readonly part: number;
}

/** One contiguous, in-order shard per part, sizes differing by at most one; no empty shards. */
export function evenShardRanges(total: number, parts: number): ShardRange[] {
  let start = 0;
  return evenShardSizes(total, parts)
    .filter((size) => size > 0)
    .map((size, part) => {
      start += size;
      return { start: start - size, end: start, part };
    });
}

/**
 * Sizes summing to `total` in proportion to `weights` (e.g. measured worker speeds), by largest-remainder
 * rounding: each gets the floor of its exact share, and the units left over go to the largest fractional
 * parts (ties to the earlier shard). A zero weight always gets size 0.
 */
export function proportionalShardSizes(total: number, weights: readonly number[]): number[] {
  requireIntegerInRange('proportionalShardSizes: total', total, 0);
  for (const [i, weight] of weights.entries()) {
    if (!Number.isFinite(weight) || weight < 0) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `proportionalShardSizes: weights[${i}] must be a finite number >= 0, got ${weight}`,
      );
    }
  }
  const weightSum = weights.reduce((sum, weight) => sum + weight, 0);
  if (!(weightSum > 0 && Number.isFinite(weightSum))) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `proportionalShardSizes: weights must have a positive, finite sum, got [${weights.join(', ')}]`,
    );
  }
  const shares = weights.map((weight) => total * (weight / weightSum));
  const sizes = shares.map(Math.floor);
  const leftover = total - sizes.reduce((sum, size) => sum + size, 0);
  const roundedUp = new Set(
    shares
      .map((share, index) => ({ index, share, fraction: share - Math.floor(share) }))
      .filter(({ share }) => share > 0)
      .sort((a, b) => b.fraction - a.fraction || a.index - b.index)
      .slice(0, leftover)
      .map(({ index }) => index),
  );
  return sizes.map((size, index) => (roundedUp.has(index) ? size + 1 : size));
}

/** Contiguous, in-order views of `batch` with the given sizes, which must sum to `batch.length`. */
export function cutIntoShards<T extends Sliceable<T>>(batch: T, sizes: readonly number[]): T[] {
  for (const [i, size] of sizes.entries()) requireIntegerInRange(`cutIntoShards: sizes[${i}]`, size, 0);
  const sizeSum = sizes.reduce((sum, size) => sum + size, 0);
  if (sizeSum !== batch.length) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `cutIntoShards: shard sizes sum to ${sizeSum} but the batch has ${batch.length} items`,
    );
  }
  let start = 0;
  return sizes.map((size) => {
    const shard = batch.subarray(start, start + size);
    start += size;
    return shard;
  });
}
