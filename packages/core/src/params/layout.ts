import type { Tensor, Variable } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { CallosumError, ErrorCodes } from '../errors.js';

export interface ParameterEntry {
  readonly name: string;
  readonly shape: readonly number[];
  /** Offset of the first element in the flat vector. */
  readonly offset: number;
  readonly size: number;
}

/** Where each weight of a model lives in one flat Float32Array, in the model's own weight order. */
export interface ParameterLayout {
  readonly entries: readonly ParameterEntry[];
  readonly totalSize: number;
}

export function parameterLayout(model: LayersModel): ParameterLayout {
  let offset = 0;
  const entries = model.weights.map((weight) => {
    const size = weight.shape.reduce<number>((product, dim) => product * (dim ?? 1), 1);
    const entry = { name: weight.originalName, shape: weight.shape.map((dim) => dim ?? 1), offset, size };
    offset += size;
    return entry;
  });
  return { entries, totalSize: offset };
}

/** The model's trainable variables, in layout order (the order gradients are flattened in). */
export function trainableVariables(model: LayersModel): Variable[] {
  if (model.trainableWeights.length !== model.weights.length) {
    // Every built-in model is fully trainable; a frozen weight would need its own place in the layout.
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      'models with non-trainable weights are not supported',
    );
  }
  return model.trainableWeights.map((weight) => weight.read() as Variable);
}

export function readFlatWeights(model: LayersModel, layout = parameterLayout(model)): Float32Array {
  return flattenTensors(
    model.weights.map((weight) => weight.read()),
    layout,
  );
}

export function writeFlatWeights(
  model: LayersModel,
  flat: Float32Array,
  layout = parameterLayout(model),
): void {
  assertFlatLength(flat, layout, 'weights');
  model.weights.forEach((weight, index) => {
    const entry = layout.entries[index] as ParameterEntry;
    const value = tf.tensor(
      flat.subarray(entry.offset, entry.offset + entry.size),
      [...entry.shape],
      'float32',
    );
    weight.write(value);
    value.dispose();
  });
}

/**
 * Concatenates per-variable tensors (in layout order) into one flat vector. The concatenation runs on
 * the backend and is read back once: one array per call instead of one per tensor plus the result.
 */
export function flattenTensors(tensors: readonly Tensor[], layout: ParameterLayout): Float32Array {
  tensors.forEach((tensor, index) => {
    const entry = layout.entries[index];
    if (entry === undefined || tensor.size !== entry.size) {
      throw new CallosumError(
        ErrorCodes.SHAPE_MISMATCH,
        `tensor ${index} has ${tensor.size} elements, the layout expects ${entry?.size ?? 'none'}`,
      );
    }
  });
  if (tensors.length !== layout.entries.length) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `${tensors.length} tensors for a layout of ${layout.entries.length}`,
    );
  }
  const flat = tf.tidy(() => tf.concat(tensors.map((tensor) => tf.reshape(tensor, [-1]))));
  try {
    return flat.dataSync() as Float32Array;
  } finally {
    flat.dispose();
  }
}

export function assertFlatLength(flat: Float32Array, layout: ParameterLayout, what: string): void {
  if (flat.length !== layout.totalSize) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `${what} vector has ${flat.length} elements, the model has ${layout.totalSize} parameters`,
    );
  }
}
