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
 */
export class OrderedGradientSum {
  private readonly sum: Float64Array;
  private readonly waiting = new Map<number, GradientResult>();
  private nextShard = 0;
  private lossSum = 0;
  private correct = 0;
  private count = 0;

  constructor(
    readonly parameterCount: number,
    readonly shardCount: number,
  ) {
    this.sum = new Float64Array(parameterCount);
  }

  /**
   * Adds shard `index`'s result. Check it with assertFiniteShard first, when it arrives, so that a bad
   * shard can be redone elsewhere instead of spoiling the step.
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

  /** The mean over all shards; every shard must have been added. */
  reduce(): ReducedStep {
    if (this.nextShard !== this.shardCount) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `only ${this.nextShard} of ${this.shardCount} shards were added`,
      );
    }
    if (this.count === 0)
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'a step needs at least one sample');
    const meanGradient = new Float32Array(this.parameterCount);
    const sum = this.sum;
    for (let i = 0; i < sum.length; i++) meanGradient[i] = (sum[i] as number) / this.count;
    return { meanGradient, lossSum: this.lossSum, correct: this.correct, count: this.count };
  }

  private fold(shard: GradientResult): void {
    const sum = this.sum;
    const gradient = shard.gradient;
    for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (gradient[i] as number);
    this.lossSum += shard.lossSum;
    this.correct += shard.correct;
    this.count += shard.count;
  }
}

/** Reduces a whole step at once: the shards' mean gradient, summed in the order given. */
export function reduceShardGradients(shards: readonly GradientResult[]): ReducedStep {
  const first = shards[0];
  if (first === undefined) {
    throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'a step needs at least one shard');
  }
  const sum = new OrderedGradientSum(first.gradient.length, shards.length);
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
