import { CallosumError, ErrorCodes } from '../errors.js';
import type { BatchTotals, GradientResult } from './batch.js';

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
  private shardCount = 0;
  private nextShard = 0;
  private lossSum = 0;
  private correct = 0;
  private count = 0;

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
    this.nextShard = 0;
    this.lossSum = 0;
    this.correct = 0;
    this.count = 0;
  }

  /**
   * Adds shard `index`'s result. Check it with assertFiniteShard first, when it arrives, so that a bad
   * shard can be redone elsewhere instead of spoiling the step. The gradient is read, never kept past
   * the fold, so the caller may reuse its buffer once every earlier shard has been added.
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
    if (this.count === 0)
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'a step needs at least one sample');
    return { meanGradient: this.mean, lossSum: this.lossSum, correct: this.correct, count: this.count };
  }

  /**
   * The first shard is copied (0 + x is x exactly), the last one is divided by the global count as it
   * is added, so a step makes one pass over the parameters per shard and no more.
   */
  private fold(shard: GradientResult): void {
    const { sum, mean } = this;
    const gradient = shard.gradient;
    this.lossSum += shard.lossSum;
    this.correct += shard.correct;
    this.count += shard.count;
    const first = this.nextShard === 0;
    const last = this.nextShard === this.shardCount - 1;
    if (last) {
      const count = this.count;
      if (first) for (let i = 0; i < mean.length; i++) mean[i] = (gradient[i] as number) / count;
      else
        for (let i = 0; i < mean.length; i++)
          mean[i] = ((sum[i] as number) + (gradient[i] as number)) / count;
    } else if (first) {
      for (let i = 0; i < sum.length; i++) sum[i] = gradient[i] as number;
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
  if (!Number.isFinite(shard.lossSum)) {
    throw new CallosumError(ErrorCodes.NON_FINITE, `shard ${index}: loss is ${shard.lossSum}`);
  }
  const gradient = shard.gradient;
  for (let i = 0; i < gradient.length; i++) {
    if (!Number.isFinite(gradient[i] as number)) {
      throw new CallosumError(ErrorCodes.NON_FINITE, `shard ${index}: gradient[${i}] is ${gradient[i]}`);
    }
  }
}
