/** Sums over a batch; sums (not means) so that shards of one global batch add up exactly. */
export interface BatchTotals {
  /** Sum over samples of the cross-entropy loss. */
  readonly lossSum: number;
  /** Number of samples whose arg-max prediction equals the label. */
  readonly correct: number;
  readonly count: number;
}

export interface GradientResult extends BatchTotals {
  /** Gradient of `lossSum` with respect to every parameter, flattened in layout order. */
  readonly gradient: Float32Array;
}
