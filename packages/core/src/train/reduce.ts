import { CallosumError, ErrorCodes } from '../errors.js';
import type { BatchTotals, GradientResult } from './batch.js';

export interface ReducedStep extends BatchTotals {
  /** Mean gradient over every sample of the global batch. */
  readonly meanGradient: Float32Array;
}

/**
 * Combines the shard results of one global batch into its mean gradient. Shards are summed in the
 * order given (shard order, never arrival order) in float64, so the result does not depend on which
 * worker finished first. Refuses a gradient or loss with NaN/Infinity, naming the shard, so a bad
 * update is never applied.
 */
export function reduceShardGradients(shards: readonly GradientResult[]): ReducedStep {
  const first = shards[0];
  if (first === undefined) {
    throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'a step needs at least one shard');
  }
  const sum = new Float64Array(first.gradient.length);
  let lossSum = 0;
  let correct = 0;
  let count = 0;
  shards.forEach((shard, index) => {
    assertFiniteShard(shard, index, sum.length);
    const gradient = shard.gradient;
    for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (gradient[i] as number);
    lossSum += shard.lossSum;
    correct += shard.correct;
    count += shard.count;
  });
  if (count === 0) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'a step needs at least one sample');
  const meanGradient = new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) meanGradient[i] = (sum[i] as number) / count;
  return { meanGradient, lossSum, correct, count };
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
