import type { GradientResult, Reduction, StepPlan, TrainingState } from '@callosum/core';
import type { ShardOutcome } from '../dispatch/shard-dispatcher.js';
import type { AppliedStep, GradientPath, StepReply } from './gradient-path.js';

/** The star: every shard's gradient comes here, is folded into the run's reduction, and applied here. */
export class StarPath implements GradientPath {
  constructor(
    private readonly state: TrainingState,
    private readonly reduction: Reduction,
  ) {}

  async prepare(): Promise<void> {}

  begin(plan: StepPlan): void {
    this.reduction.begin(plan);
  }

  dispatched(): void {}

  accepted(shard: number, reply: StepReply): void {
    // The star's result intake accepts only gradient messages, whose totals carry the gradient.
    this.reduction.add(shard, reply.totals as GradientResult);
  }

  async finish(
    _step: number,
    _plan: StepPlan,
    outcomes: readonly ShardOutcome<StepReply>[],
  ): Promise<AppliedStep> {
    const reduced = this.reduction.finish();
    const reducedAt = performance.now();
    const learningRate = this.state.applyStep(reduced);
    const optimizerMs = performance.now() - reducedAt;
    // Reduced and applied: nothing reads the shards' gradients any more, and the next ones from the
    // same workers may be read into their memory.
    for (const { worker, result } of outcomes) {
      worker.recycle((result.totals as GradientResult).gradient.buffer as ArrayBuffer);
    }
    return { totals: reduced, learningRate, optimizerMs };
  }
}
