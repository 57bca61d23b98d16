import type { GradientResult, Reduction, StepPlan, TrainingState } from '@callosum/core';
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

  accepted(shard: number, reply: StepReply): void {
    // The star's result intake accepts only gradient messages, whose totals carry the gradient.
    this.reduction.add(shard, reply.totals as GradientResult);
  }

  async finish(): Promise<AppliedStep> {
    const reduced = this.reduction.finish();
    const reducedAt = performance.now();
    const learningRate = this.state.applyStep(reduced);
    return { totals: reduced, learningRate, optimizerMs: performance.now() - reducedAt };
  }
}
