/** A shard's samples on the wire (protocol 1.4): features and labels as typed tensors, [count, ...]. */
import type { RawSamples, SampleDtype, SampleSet, SampleValues } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import { fromWireTensor, toWireTensor, type WireTensor } from './tensor.js';

export function samplesToWire(
  samples: RawSamples,
  set: SampleSet,
): { features: WireTensor; labels: WireTensor } {
  return {
    features: toWireTensor(samples.features, [samples.count, ...set.features.sampleShape]),
    labels: toWireTensor(samples.labels, [samples.count, ...set.labels.sampleShape]),
  };
}

/** Training samples' keys on the wire: int32, the same 32 bits. */
export function keysToWire(samples: RawSamples): WireTensor {
  const keys = samples.keys;
  if (keys === undefined) {
    throw new CallosumError(
      ErrorCodes.INTERNAL,
      'training samples without their keys (TrainingState.gatherTrainingSamples)',
    );
  }
  return toWireTensor(new Int32Array(keys.buffer, keys.byteOffset, keys.length), [samples.count]);
}

/** The samples a request carries; throws MALFORMED_MESSAGE when its features and labels disagree. */
export function samplesFromWire(request: {
  features: WireTensor;
  labels: WireTensor;
  keys?: WireTensor;
}): RawSamples {
  const count = request.features.shape[0];
  if (count === undefined || request.labels.shape[0] !== count) {
    throw new CallosumError(
      ErrorCodes.MALFORMED_MESSAGE,
      `features of shape [${request.features.shape.join(', ')}] and labels of shape [${request.labels.shape.join(', ')}] ` +
        'must both start with the sample count',
    );
  }
  const keys = request.keys && fromWireTensor(request.keys, 'int32', [count]);
  return {
    count,
    features: sampleValues(request.features, 'features'),
    labels: sampleValues(request.labels, 'labels'),
    keys: keys && new Uint32Array(keys.buffer, keys.byteOffset, keys.length),
  };
}

/** Samples travel in the dtype they are stored in; the 16-bit floats are for weights and gradients. */
function sampleValues(tensor: WireTensor, what: string): SampleValues {
  if (!isSampleDtype(tensor.dtype)) {
    throw new CallosumError(
      ErrorCodes.MALFORMED_MESSAGE,
      `${what} of dtype ${tensor.dtype}: samples are float32, int32 or uint8`,
    );
  }
  return fromWireTensor(tensor, tensor.dtype);
}

function isSampleDtype(dtype: WireTensor['dtype']): dtype is SampleDtype {
  return dtype === 'float32' || dtype === 'int32' || dtype === 'uint8';
}
