/**
 * Non-trainable statistics (BatchNormalization's moving mean and variance), handled like gradients so
 * that they reduce the same way: each shard reports its batch statistic times its samples in the
 * statistic's entries of the gradient vector, the reduction turns those into a sample-weighted mean in
 * its fixed order, and the coordinator then moves each statistic towards that mean with the layer's
 * momentum, as tfjs does after every batch. The forward pass normalises with each shard's own batch
 * statistics, as PyTorch DDP does without SyncBatchNorm.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { batchNormalizationLayers, type ParameterLayout } from '../params/layout.js';

/**
 * Runs `pass` (a training forward and backward pass) and returns its result with `vector`: one tensor
 * per layout entry, the trainable ones being `gradients` in order, each statistic its batch value times
 * `count`, and zeros for frozen weights. The model's statistics are as they were afterwards.
 *
 * How the batch value is caught: tfjs's BatchNormalization sets moving = moving - (moving - batch) ×
 * (1 - momentum) in training. With moving = 0 and momentum = 0 that is 0 - (0 - batch) × 1, the batch
 * value exactly; the moving values and momenta are restored afterwards.
 */
export function withBatchStatistics<T extends { gradients: Tensor[] }>(
  model: LayersModel,
  layout: ParameterLayout,
  count: number,
  pass: () => T,
): Omit<T, 'gradients'> & { vector: Tensor[] } {
  const layers = batchNormalizationLayers(model);
  const saved = layers.map(({ layer, movingMean, movingVariance }) => {
    const adjustable = layer as unknown as { momentum: number };
    const state = {
      adjustable,
      momentum: adjustable.momentum,
      mean: tf.clone(movingMean.read()),
      variance: tf.clone(movingVariance.read()),
    };
    adjustable.momentum = 0;
    movingMean.write(tf.zerosLike(state.mean));
    movingVariance.write(tf.zerosLike(state.variance));
    return state;
  });
  try {
    const { gradients, ...rest } = pass();
    return {
      ...rest,
      vector: withStatisticEntries(model, layout, gradients, (weight) => tf.mul(weight.read(), count)),
    };
  } finally {
    layers.forEach(({ movingMean, movingVariance }, index) => {
      const state = saved[index];
      if (state === undefined) return;
      state.adjustable.momentum = state.momentum;
      movingMean.write(state.mean);
      movingVariance.write(state.variance);
      tf.dispose([state.mean, state.variance]);
    });
  }
}

type ModelWeight = LayersModel['nonTrainableWeights'][number];

/**
 * One tensor per layout entry: the trainable ones `gradients` in order, each statistic `statisticValue`
 * of its weight, zeros for frozen weights.
 */
export function withStatisticEntries(
  model: LayersModel,
  layout: ParameterLayout,
  gradients: Tensor[],
  statisticValue: (weight: ModelWeight) => Tensor,
): Tensor[] {
  const others = [...model.nonTrainableWeights].map((weight, index) => {
    const entry = layout.entries[gradients.length + index];
    return entry?.role === 'statistic' ? statisticValue(weight) : tf.zerosLike(weight.read());
  });
  return [...gradients, ...others];
}

/**
 * Moves every statistic of `weights` towards the step's mean batch value (its entries of
 * `meanGradient`) as tfjs's BatchNormalization does, in float32: w - (w - mean) × (1 - momentum).
 */
export function applyStatistics(
  weights: Float32Array,
  meanGradient: Float32Array,
  layout: ParameterLayout,
): void {
  for (const entry of layout.entries) {
    if (entry.role !== 'statistic') continue;
    const decay = Math.fround(1 - (entry.momentum as number));
    for (let i = entry.offset; i < entry.offset + entry.size; i++) {
      const value = weights[i] as number;
      weights[i] = Math.fround(value - Math.fround(Math.fround(value - (meanGradient[i] as number)) * decay));
    }
  }
}
