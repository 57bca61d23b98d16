/** Sums over a batch; sums (not means) so that shards of one global batch add up exactly. */
export interface BatchTotals {
  /** Sum over samples of the loss. */
  readonly lossSum: number;
  /** Samples counted as correct by the task's accuracy (0 when the task does not measure accuracy). */
  readonly correct: number;
  /** Sum over samples of each metric other than accuracy, in the objective's order. */
  readonly metricSums: readonly number[];
  readonly count: number;
}

export interface GradientResult extends BatchTotals {
  /**
   * Gradient of `lossSum` with respect to every trainable parameter, flattened in layout order, then
   * each statistic's batch value summed over the samples (see ParameterLayout).
   */
  readonly gradient: Float32Array;
}
