import type { GradientResult } from '../train/batch.js';
import type { ComputeRequest, ComputeTimings, GradientMessage } from './messages.js';
import { toWireTensor } from './tensor.js';

/** A worker's answer to a compute request: its shard's gradient of the summed loss, totals and timings. */
export function gradientReply(
  request: ComputeRequest,
  result: GradientResult,
  timings: ComputeTimings,
): GradientMessage {
  return {
    type: 'gradient',
    step: request.step,
    shard: request.shard,
    gradient: toWireTensor(result.gradient, [result.gradient.length]),
    lossSum: result.lossSum,
    correct: result.correct,
    metricSums: [...result.metricSums],
    count: result.count,
    timings,
  };
}
