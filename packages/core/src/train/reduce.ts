import { CallosumError, ErrorCodes } from '../errors.js';
import type { BatchTotals, GradientResult } from './batch.js';
import { addTotals, EMPTY_TOTALS } from './evaluate.js';
import { addScaledSimd, allFiniteSimd, scaleIntoSimd } from './vector-simd.js';

export interface ReducedStep extends BatchTotals {
  /** Mean gradient over every sample of the global batch. */
  readonly meanGradient: Float32Array;
}

/**
 * Sums the shard gradients of one global batch in shard order (never arrival order) in float64, so
 * the result does not depend on which worker finished first. Shards may be added in any order; each
 * is folded into the sum as soon as every shard before it has been, so most of the work is done while
 * slower shards are still being computed.
 *
 * One instance serves a whole run (`begin` starts each step): its buffers are allocated once, because
 * allocating and first touching 8 MB every step costs several times the arithmetic, in page faults and
 * garbage collections.
 */
export class OrderedGradientSum {
  private readonly sum: Float64Array;
  private readonly mean: Float32Array;
  private readonly waiting = new Map<number, GradientResult>();
  /** Shard 0's gradient until shard 1 is added to it. */
  private held: Float32Array | undefined;
  private shardCount = 0;
  private nextShard = 0;
  private totals: BatchTotals = EMPTY_TOTALS;

  constructor(readonly parameterCount: number) {
    this.sum = new Float64Array(parameterCount);
    this.mean = new Float32Array(parameterCount);
  }

  /** Starts a step of `shardCount` shards, forgetting everything added before. */
  begin(shardCount: number): void {
    if (!Number.isInteger(shardCount) || shardCount < 1) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `a step needs at least one shard, got ${shardCount}`,
      );
    }
    this.shardCount = shardCount;
    this.waiting.clear();
    this.held = undefined;
    this.nextShard = 0;
    this.totals = EMPTY_TOTALS;
  }

  /**
   * Adds shard `index`'s result. Check it with assertFiniteShard first, when it arrives, so that a bad
   * shard can be redone elsewhere instead of spoiling the step. Shard 0's gradient is read only when
   * shard 1 is added, so its buffer must stay untouched until then.
   */
  add(index: number, shard: GradientResult): void {
    if (
      !Number.isInteger(index) ||
      index < 0 ||
      index >= this.shardCount ||
      index < this.nextShard ||
      this.waiting.has(index)
    ) {
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `shard ${index} is not awaited`);
    }
    this.waiting.set(index, shard);
    for (
      let next = this.waiting.get(this.nextShard);
      next !== undefined;
      next = this.waiting.get(this.nextShard)
    ) {
      this.waiting.delete(this.nextShard);
      this.fold(next);
      this.nextShard += 1;
    }
  }

  /**
   * The mean over all shards; every shard must have been added. `meanGradient` is this instance's own
   * buffer, valid until the next `begin`.
   */
  reduce(): ReducedStep {
    if (this.nextShard !== this.shardCount) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `only ${this.nextShard} of ${this.shardCount} shards were added`,
      );
    }
    requireSamples(this.totals.count);
    return { meanGradient: this.mean, ...this.totals };
  }

  /**
   * Each pass reads what it needs once: the first shard is only held (0 + x is x exactly) and added to
   * the second in one pass, and the last is scaled by 1 / global count as it is added. A 2-shard step
   * makes one pass over the parameters in all, writing straight into the mean.
   */
  private fold(shard: GradientResult): void {
    this.totals = addTotals(this.totals, shard);
    const position = this.nextShard;
    const last = position === this.shardCount - 1;
    if (position === 0 && !last) {
      this.held = shard.gradient;
      return;
    }
    const { sum, mean } = this;
    const gradient = shard.gradient;
    const first = this.held as Float32Array;
    this.held = undefined;
    const { count } = this.totals;
    const scale = 1 / count;
    if (position === 0) {
      scaleInto(mean, gradient, count);
    } else if (position === 1 && last) {
      addScaledSimd(mean, first, gradient, scale);
    } else if (position === 1) {
      for (let i = 0; i < sum.length; i++) sum[i] = (first[i] as number) + (gradient[i] as number);
    } else if (last) {
      for (let i = 0; i < mean.length; i++) {
        mean[i] = ((sum[i] as number) + (gradient[i] as number)) * scale;
      }
    } else {
      for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (gradient[i] as number);
    }
  }
}

/**
 * Reduces a whole step at once: the shards' mean gradient, summed in the order given. Pass the same
 * `sum` every step to reuse its buffers (the result then lives in them until the next call).
 */
export function reduceShardGradients(
  shards: readonly GradientResult[],
  sum = new OrderedGradientSum(shards[0]?.gradient.length ?? 0),
): ReducedStep {
  sum.begin(shards.length);
  shards.forEach((shard, index) => {
    assertFiniteShard(shard, index, sum.parameterCount);
    sum.add(index, shard);
  });
  return sum.reduce();
}

/** Throws NON_FINITE (or SHAPE_MISMATCH) if one shard's result must not be applied. */
export function assertFiniteShard(shard: GradientResult, index: number, parameterCount: number): void {
  if (shard.gradient.length !== parameterCount) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `shard ${index}: gradient has ${shard.gradient.length} elements, expected ${parameterCount}`,
    );
  }
  const found = nonFiniteValue(shard);
  if (found !== undefined) throw new CallosumError(ErrorCodes.NON_FINITE, `shard ${index}: ${found}`);
}

/** What in a result is NaN or Infinity ("loss is Infinity", "gradient[3] is NaN"), if anything is. */
export function nonFiniteValue(result: GradientResult): string | undefined {
  if (!Number.isFinite(result.lossSum)) return `loss is ${result.lossSum}`;
  if (allFiniteSimd(result.gradient)) return undefined;
  const bad = result.gradient.findIndex((value) => !Number.isFinite(value));
  return `gradient[${bad}] is ${result.gradient[bad]}`;
}

/** A mean over no samples would be 0 / 0: refuse such a step rather than apply NaN. */
export function requireSamples(count: number): void {
  if (count === 0) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'a step needs at least one sample');
}

/** `into` = `gradient` × (1 / `count`), rounded to float32: a summed gradient made a mean. */
export function scaleInto(into: Float32Array, gradient: Float32Array, count: number): void {
  scaleIntoSimd(into, gradient, 1 / count);
}
