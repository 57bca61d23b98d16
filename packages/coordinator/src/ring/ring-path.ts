import { addTotals, type BatchTotals, EMPTY_TOTALS, type StepPlan } from '@callosum/core';
import type { ShardOutcome } from '../dispatch/shard-dispatcher.js';
import type { AppliedStep, GradientPath, StepReply } from '../run/gradient-path.js';
import type { WorkerConnection } from '../workers/connection.js';
import type { ReplicaSync } from './replica-sync.js';
import type { RingReduction } from './ring-reduction.js';

/**
 * The ring: the gradients stay on the workers, which reduce them among themselves and apply the mean to
 * their replicas; here only the step's totals are added up and the step counted.
 */
export class RingPath implements GradientPath {
  constructor(
    private readonly replicas: ReplicaSync,
    private readonly reduction: RingReduction,
  ) {}

  prepare(): Promise<void> {
    return this.replicas.admitWaiting();
  }

  begin(): void {}

  dispatched(step: number, plan: StepPlan, holders: readonly (WorkerConnection | undefined)[]): void {
    if (holders.every((worker) => worker !== undefined)) this.reduction.announce(step, plan, holders);
  }

  accepted(): void {}

  async finish(
    step: number,
    plan: StepPlan,
    outcomes: readonly ShardOutcome<StepReply>[],
  ): Promise<AppliedStep> {
    const reduced = await this.reduction.run(step, plan, outcomes);
    const totals = outcomes.reduce<BatchTotals>(
      (sum, outcome) => addTotals(sum, outcome.result.totals),
      EMPTY_TOTALS,
    );
    return {
      totals,
      learningRate: this.replicas.advance(),
      optimizerMs: 0,
      peerBytes: reduced.peerBytes,
    };
  }
}
