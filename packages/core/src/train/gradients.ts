import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { ImageBatch } from '../data/batch.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import {
  flattenTensors,
  type ParameterLayout,
  parameterLayout,
  trainableVariables,
} from '../params/layout.js';
import type { BatchTotals, GradientResult } from './batch.js';
import { correctCount, crossEntropySum, forwardLogits } from './logits.js';

function inputTensors(model: LayersModel, batch: ImageBatch): { input: Tensor; labels: Tensor } {
  const [, ...sampleShape] = model.inputs[0]?.shape ?? [];
  const sampleSize = sampleShape.reduce<number>((product, dim) => product * (dim ?? 1), 1);
  if (batch.pixels.length !== batch.count * sampleSize || batch.labels.length !== batch.count) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `batch of ${batch.count} needs ${batch.count * sampleSize} pixels and ${batch.count} labels, ` +
        `got ${batch.pixels.length} and ${batch.labels.length}`,
    );
  }
  return {
    input: tf.tensor(batch.pixels, [batch.count, ...sampleShape.map((dim) => dim ?? 1)], 'float32'),
    labels: tf.tensor1d(batch.labels, 'int32'),
  };
}

/**
 * Gradient of the summed loss over `batch` with respect to all parameters, as one flat vector (written
 * into `into` when given, e.g. the frame that will carry it), plus the batch totals. Creates no lasting
 * tensors.
 */
export function computeGradients(
  model: LayersModel,
  batch: ImageBatch,
  layout: ParameterLayout = parameterLayout(model),
  into: Float32Array = new Float32Array(layout.totalSize),
): GradientResult {
  if (batch.count === 0) {
    into.fill(0);
    return { gradient: into, lossSum: 0, correct: 0, count: 0 };
  }
  const variables = trainableVariables(model);
  // Only tensors leave the tidy: tidy walks its result looking for tensors, and walking a
  // 700k-element Float32Array key by key costs more than the whole backward pass.
  const { loss, correct, grads } = tf.tidy(() => {
    const { input, labels } = inputTensors(model, batch);
    let correctTensor: Tensor | undefined;
    const { value, grads: byName } = tf.variableGrads(() => {
      const logits = forwardLogits(model, input, true);
      correctTensor = tf.keep(correctCount(logits, labels));
      return crossEntropySum(logits, labels) as Scalar;
    }, variables);
    return {
      loss: value,
      correct: correctTensor as Tensor,
      grads: variables.map((variable) => byName[variable.name] as Tensor),
    };
  });
  try {
    return {
      gradient: flattenTensors(grads, layout, into),
      lossSum: loss.dataSync()[0] as number,
      correct: correct.dataSync()[0] as number,
      count: batch.count,
    };
  } finally {
    tf.dispose([loss, correct, ...grads]);
  }
}

/** Loss and accuracy totals of the model on `batch`, without gradients. */
export function evaluateBatch(model: LayersModel, batch: ImageBatch): BatchTotals {
  if (batch.count === 0) return { lossSum: 0, correct: 0, count: 0 };
  return tf.tidy(() => {
    const { input, labels } = inputTensors(model, batch);
    const logits = forwardLogits(model, input, false);
    return {
      lossSum: crossEntropySum(logits, labels).dataSync()[0] as number,
      correct: correctCount(logits, labels).dataSync()[0] as number,
      count: batch.count,
    };
  });
}
