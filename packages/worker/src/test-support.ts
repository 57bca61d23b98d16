/** Requests as a coordinator sends them, for the worker's tests. */
import {
  type ComputeRequest,
  gatherSamples,
  keysToWire,
  type SampleSet,
  samplesToWire,
} from '@callosum/core';

/** A compute request for the samples of `set` at `indices` (keys 0: no dropout in the built-in models). */
export function mnistComputeRequest(
  set: SampleSet,
  {
    step,
    weightsVersion,
    indices,
    shard = 0,
  }: { step: number; weightsVersion: number; indices: number[]; shard?: number },
): ComputeRequest {
  const samples = gatherSamples(set, indices);
  return {
    type: 'compute',
    step,
    shard,
    weightsVersion,
    ...samplesToWire(samples, set),
    keys: keysToWire(samples),
  };
}
