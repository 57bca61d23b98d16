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
 * Copies per-variable tensors (in layout order) into one flat vector: `into` if given (it must have
 * the layout's length), else a new one. Each tensor is copied once, straight from the backend's memory
 * where the backend allows it (wasm), instead of through an intermediate array per tensor.
 */
export function flattenTensors(
  tensors: readonly Tensor[],
  layout: ParameterLayout,
  into: Float32Array = new Float32Array(layout.totalSize),
): Float32Array {
  assertFlatLength(into, layout, 'target');
  if (tensors.length !== layout.entries.length) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `${tensors.length} tensors for a layout of ${layout.entries.length}`,
    );
  }
  const backend = tf.backend() as { typedArrayFromHeap?: (tensor: Tensor) => ArrayLike<number> };
  tensors.forEach((tensor, index) => {
    const entry = layout.entries[index] as ParameterEntry;
    if (tensor.size !== entry.size) {
      throw new CallosumError(
        ErrorCodes.SHAPE_MISMATCH,
        `tensor ${index} has ${tensor.size} elements, the layout expects ${entry.size}`,
      );
    }
    const values =
      typeof backend.typedArrayFromHeap === 'function'
        ? backend.typedArrayFromHeap(tensor)
        : tensor.dataSync();
    into.set(values, entry.offset);
  });
  return into;
}

export function assertFlatLength(flat: Float32Array, layout: ParameterLayout, what: string): void {
  if (flat.length !== layout.totalSize) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `${what} vector has ${flat.length} elements, the model has ${layout.totalSize} parameters`,
    );
  }
}
