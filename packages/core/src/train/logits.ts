import type { Tensor, Variable } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { CallosumError, ErrorCodes } from '../errors.js';

/**
 * Runs the model up to, but not through, its final softmax, returning logits. The loss is then
 * computed with logSoftmax on these logits, which is stable; taking log of the model's softmax output
 * (or applying a second softmax) is not. The final layer must be a Dense layer with softmax activation,
 * as for every registered model, so the saved model still outputs probabilities.
 */
export function forwardLogits(model: LayersModel, input: Tensor, training: boolean): Tensor {
  const layers = model.layers;
  const head = layers[layers.length - 1];
  const headConfig = head?.getConfig();
  if (head === undefined || head.getClassName() !== 'Dense' || headConfig?.activation !== 'softmax') {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `model "${model.name}" must end in a Dense layer with softmax activation`,
    );
  }
  let hidden = input;
  for (const layer of layers.slice(0, -1)) {
    hidden = layer.apply(hidden, { training }) as Tensor;
  }
  const [kernel, bias] = head.weights.map((weight) => weight.read() as Variable);
  const projected = tf.matMul(hidden, kernel as Tensor);
  return bias === undefined ? projected : tf.add(projected, bias);
}

/** Sum over the batch of sparse categorical cross-entropy, from logits. */
export function crossEntropySum(logits: Tensor, labels: Tensor): Tensor {
  const classCount = logits.shape[1] as number;
  const oneHot = tf.oneHot(labels, classCount);
  return tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits))));
}

export function correctCount(logits: Tensor, labels: Tensor): Tensor {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'int32'));
}
