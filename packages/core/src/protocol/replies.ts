import type { GradientResult } from '../train/batch.js';
import { stepLabel } from '../train/step-label.js';
import type { ComputeRequest, ComputeTimings, GradientMessage } from './messages.js';
import { DEFAULT_WIRE_DTYPE, floatsToWire, type WireDtype } from './wire-dtype.js';

/**
 * A worker's answer to a compute request: its shard's gradient of the summed loss, in the run's wire
 * dtype (a 16-bit one rounded into `into`, if given: see floatsToWire), totals and timings. Throws
 * NON_FINITE if the gradient overflows that dtype.
 */
export function gradientReply(
  request: ComputeRequest,
  result: GradientResult,
  timings: ComputeTimings,
  wireDtype: WireDtype = DEFAULT_WIRE_DTYPE,
  into?: Uint8Array,
): GradientMessage {
  return {
    type: 'gradient',
    step: request.step,
    shard: request.shard,
    gradient: floatsToWire(result.gradient, wireDtype, `${stepLabel(request.step)}: gradient`, into),
    lossSum: result.lossSum,
    correct: result.correct,
    metricSums: [...result.metricSums],
    count: result.count,
    timings,
  };
}
