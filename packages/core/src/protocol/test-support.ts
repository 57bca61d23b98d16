// Test support for the protocol tests: a valid message to encode, mutate and decode.
import { toWireTensor } from './tensor.js';

/** A valid `gradient` message carrying `gradient`, with `extra` fields merged in (to make it invalid). */
export function gradientMessage(
  gradient: Float32Array = new Float32Array([1.5, -2, 3.25]),
  extra: Record<string, unknown> = {},
) {
  return {
    type: 'gradient',
    step: 4,
    shard: 1,
    gradient: toWireTensor(gradient, [gradient.length]),
    lossSum: 1.25,
    correct: 3,
    metricSums: [0.75],
    count: 5,
    timings: { decodeMs: 1, computeMs: 20 },
    ...extra,
  };
}
