import type { Tensor, Variable } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { CallosumError, ErrorCodes } from '../errors.js';

/**
 * What a weight is to the trainer. Trainable weights follow the optimizer. Statistics (BatchNormalization's
 * moving mean and variance) follow the batches: each shard reports its batch statistic and the
 * coordinator moves the weight towards their sample-weighted mean (train/statistics.ts). Frozen weights
 * (a layer set `trainable = false`) never change.
 */
export type WeightRole = 'trainable' | 'statistic' | 'frozen';

export interface ParameterEntry {
  readonly name: string;
  readonly shape: readonly number[];
  /** Offset of the first element in the flat vector. */
  readonly offset: number;
  readonly size: number;
  readonly role: WeightRole;
  /** A statistic's momentum: each step keeps this fraction of the old value. */
  readonly momentum?: number | undefined;
}

/**
 * Where each weight of a model lives in one flat Float32Array: the trainable weights first, in the
 * model's order, so the optimizer works on one prefix of the vector, then the others. A gradient vector
 * has the same layout: statistics in their entries (as sums over the batch), zeros for frozen weights.
 */
export interface ParameterLayout {
  readonly entries: readonly ParameterEntry[];
  readonly totalSize: number;
  /** Elements [0, trainableSize) are the trainable weights. */
  readonly trainableSize: number;
}

type ModelWeight = LayersModel['weights'][number];

/** The model's weights in layout order: the trainable ones, then the others. */
function layoutWeights(model: LayersModel): ModelWeight[] {
  return [...model.trainableWeights, ...model.nonTrainableWeights];
}

export function parameterLayout(model: LayersModel): ParameterLayout {
  const momenta = statisticMomenta(model);
  const trainable = new Set(model.trainableWeights);
  let offset = 0;
  let trainableSize = 0;
  const entries = layoutWeights(model).map((weight) => {
    const size = weight.shape.reduce<number>((product, dim) => product * (dim ?? 1), 1);
    const momentum = momenta.get(weight);
    const role: WeightRole = trainable.has(weight)
      ? 'trainable'
      : momentum === undefined
        ? 'frozen'
        : 'statistic';
    const entry = {
      name: weight.originalName,
      shape: weight.shape.map((dim) => dim ?? 1),
      offset,
      size,
      role,
      momentum,
    };
    offset += size;
    if (role === 'trainable') trainableSize = offset;
    return entry;
  });
  return { entries, totalSize: offset, trainableSize };
}

type Layer = LayersModel['layers'][number];

/** Every layer of the model, a nested model's layers before the nested model itself, in a fixed order. */
export function everyLayer(model: LayersModel): Layer[] {
  return model.layers.flatMap((layer) => {
    const nested = (layer as Partial<LayersModel>).layers;
    return nested === undefined ? [layer] : [...everyLayer(layer as LayersModel), layer];
  });
}

/** BatchNormalization layers, anywhere in the model (nested models included), with their moving weights. */
export function batchNormalizationLayers(
  model: LayersModel,
): { layer: Layer; movingMean: ModelWeight; movingVariance: ModelWeight }[] {
  return everyLayer(model).flatMap((layer) => {
    const moving = layer as unknown as { movingMean?: ModelWeight; movingVariance?: ModelWeight };
    return layer.getClassName() === 'BatchNormalization' && moving.movingMean && moving.movingVariance
      ? [{ layer, movingMean: moving.movingMean, movingVariance: moving.movingVariance }]
      : [];
  });
}

function statisticMomenta(model: LayersModel): Map<ModelWeight, number> {
  const momenta = new Map<ModelWeight, number>();
  for (const { layer, movingMean, movingVariance } of batchNormalizationLayers(model)) {
    const momentum = layer.getConfig().momentum as number;
    momenta.set(movingMean, momentum);
    momenta.set(movingVariance, momentum);
  }
  return momenta;
}

/** The model's trainable variables, in layout order (the order gradients are flattened in). */
export function trainableVariables(model: LayersModel): Variable[] {
  return model.trainableWeights.map((weight) => weight.read() as Variable);
}

export function readFlatWeights(model: LayersModel, layout = parameterLayout(model)): Float32Array {
  return flattenTensors(
    layoutWeights(model).map((weight) => weight.read()),
    layout,
  );
}

export function writeFlatWeights(
  model: LayersModel,
  flat: Float32Array,
  layout = parameterLayout(model),
): void {
  assertFlatLength(flat, layout, 'weights');
  layoutWeights(model).forEach((weight, index) => {
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
