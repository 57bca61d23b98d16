/** Requests as a coordinator sends them, for the worker's tests. */
import {
  type ComputeRequest,
  gatherSamples,
  keysToWire,
  type SampleSet,
  samplesToWire,
} from '@callosum/core';

/** A compute request for the samples of `set` at `indices`. */
export function mnistComputeRequest(
  set: SampleSet,
  {
    step,
    weightsVersion,
    indices,
    shard = 0,
  }: { step: number; weightsVersion: number; indices: number[]; shard?: number },
): ComputeRequest {
  // Keys as TrainingState would give them are irrelevant here: the built-in models have no dropout.
  const samples = { ...gatherSamples(set, indices), keys: Uint32Array.from(indices) };
  return {
    type: 'compute',
    step,
    shard,
    weightsVersion,
    ...samplesToWire(samples, set),
    keys: keysToWire(samples),
  };
}
