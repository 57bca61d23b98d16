import { z } from 'zod';

const count = z.number().int().nonnegative();

/**
 * What went wrong and was recovered from, counted where it happens (the dispatcher and the worker
 * pool) and reported with every step event, in /status and in the run summary.
 */
export const runCountersSchema = z.strictObject({
  /**
   * Shards sent again (to the least-loaded healthy worker that has not failed them) because their worker
   * was lost, late or answered badly.
   */
  redoneShards: count,
  /**
   * Ring runs: how often a step's reduction among the workers was abandoned and done again (a peer lost,
   * late or reporting a failure; replicas that differ); a step redone twice counts twice. Absent from
   * runs recorded before it was counted.
   */
  redoneSteps: count.default(0),
  /** Shards that passed the straggler deadline of their round. */
  lateShards: count,
  /**
   * Results that arrived for a round, step or shard no longer assigned to their sender, and ring failures
   * of a reduction attempt no longer under way.
   */
  discardedMessages: count,
  /**
   * Workers closed by the coordinator for misbehaving: a missed shard deadline, the heartbeat timeout,
   * not reading their weights, failed or unusable results in a row, or late shards in a row.
   */
  evictions: count,
});

export type RunCounters = z.infer<typeof runCountersSchema>;

export function zeroCounters(): RunCounters {
  return { redoneShards: 0, redoneSteps: 0, lateShards: 0, discardedMessages: 0, evictions: 0 };
}
