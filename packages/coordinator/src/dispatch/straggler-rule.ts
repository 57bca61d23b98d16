/**
 * When a shard counts as late: once its worker has been on it `factor` times as long as the median
 * time per sample of the shards already answered in its round predicts for its size, but never before
 * `floorMs`. An infinite factor turns the rule off.
 */
export interface StragglerRule {
  readonly factor: number;
  readonly floorMs: number;
}

/** What the answered shards predict for a shard of `samples` samples. */
export function typicalShardMs(answeredMsPerSample: readonly number[], samples: number): number {
  return median(answeredMsPerSample) * samples;
}

/** How long a worker may be on a shard of `samples` samples before it is late. */
export function lateAfterMs(
  rule: StragglerRule,
  answeredMsPerSample: readonly number[],
  samples: number,
): number {
  return Math.max(rule.floorMs, rule.factor * typicalShardMs(answeredMsPerSample, samples));
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}
