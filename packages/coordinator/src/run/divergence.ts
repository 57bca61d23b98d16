/**
 * Tells a diverged run from a faulty worker. One worker's non-finite loss or gradient may be its own
 * fault (its shard is redone elsewhere); when every healthy worker finds the same step non-finite, the
 * weights themselves are the cause (typically a learning rate far too high) and no redo can help.
 */
export class DivergenceWatch {
  private step = -1;
  private readonly reporters = new Set<string>();

  /**
   * Records that `worker` found step `step` non-finite; true when every one of `healthy` (the
   * workers that could still compute it) has now done so for this step.
   */
  nonFinite(step: number, worker: string, healthy: readonly string[]): boolean {
    if (step !== this.step) {
      this.step = step;
      this.reporters.clear();
    }
    this.reporters.add(worker);
    return healthy.length > 0 && healthy.every((id) => this.reporters.has(id));
  }
}
