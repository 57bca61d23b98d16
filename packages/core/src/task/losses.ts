/**
 * Losses and metrics by their tfjs/Keras names, each as a function of (labels, predictions) giving one
 * value per sample, with the formulas tfjs-layers uses (a model saved by Callosum and evaluated by
 * plain tfjs reports the same loss). Sums of these per-sample values are what shards add up.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CallosumError, ErrorCodes } from '../errors.js';
import { didYouMean } from '../options/did-you-mean.js';

/** Labels and predictions in, one value per sample out (shape [samples]). */
export type SampleFunction = (labels: tf.Tensor, predictions: tf.Tensor) => tf.Tensor;

/** tfjs clips probabilities to [EPSILON, 1 - EPSILON] before taking logs (backend epsilon, float32). */
const EPSILON = 1e-7;

const lastAxis = (tensor: tf.Tensor) => tensor.rank - 1;

function clippedProbabilities(predictions: tf.Tensor): tf.Tensor {
  return tf.clipByValue(predictions, EPSILON, 1 - EPSILON);
}

function categoricalCrossentropy(labels: tf.Tensor, predictions: tf.Tensor): tf.Tensor {
  // Rescaled so each sample's probabilities sum to 1, as tfjs does for probabilities (not logits).
  const normalized = tf.div(predictions, tf.sum(predictions, lastAxis(predictions), true));
  const logs = tf.log(clippedProbabilities(normalized));
  return tf.neg(tf.sum(tf.mul(tf.cast(labels, 'float32'), logs), lastAxis(predictions)));
}

/** Class-index labels one-hot encoded in the predictions' shape. */
export function oneHotLike(labels: tf.Tensor, predictions: tf.Tensor): tf.Tensor {
  const classes = predictions.shape[lastAxis(predictions)] as number;
  return tf.reshape(tf.oneHot(tf.cast(tf.reshape(labels, [-1]), 'int32'), classes), predictions.shape);
}

function binaryCrossentropy(labels: tf.Tensor, predictions: tf.Tensor): tf.Tensor {
  // -(y log p + (1 - y) log(1 - p)) in tfjs's stable form: back to logits, then the logistic loss.
  const p = clippedProbabilities(predictions);
  const logits = tf.log(tf.div(p, tf.sub(1, p)));
  const perElement = tf.add(
    tf.sub(tf.relu(logits), tf.mul(logits, labels)),
    tf.log1p(tf.exp(tf.neg(tf.abs(logits)))),
  );
  return tf.mean(perElement, lastAxis(predictions));
}

/** Keras's Huber loss with delta 1: quadratic within 1 of the label, linear beyond. */
function huberLoss(labels: tf.Tensor, predictions: tf.Tensor): tf.Tensor {
  const error = tf.abs(tf.sub(predictions, labels));
  const quadratic = tf.minimum(error, 1);
  const linear = tf.sub(error, quadratic);
  return tf.mean(tf.add(tf.mul(0.5, tf.square(quadratic)), linear), lastAxis(predictions));
}

export const LOSSES = {
  // tfjs clips the probabilities once before, and once inside, the categorical cross-entropy.
  sparseCategoricalCrossentropy: (labels, predictions) =>
    categoricalCrossentropy(oneHotLike(labels, predictions), clippedProbabilities(predictions)),
  categoricalCrossentropy,
  binaryCrossentropy,
  meanSquaredError: (labels, predictions) =>
    tf.mean(tf.square(tf.sub(predictions, labels)), lastAxis(predictions)),
  meanAbsoluteError: (labels, predictions) =>
    tf.mean(tf.abs(tf.sub(predictions, labels)), lastAxis(predictions)),
  huberLoss,
} satisfies Record<string, SampleFunction>;

export type LossName = keyof typeof LOSSES;
export const LOSS_NAMES = Object.keys(LOSSES) as LossName[];

/** Whether the labels of this loss are class indices (one integer per sample). */
export function takesClassIndices(loss: string): boolean {
  return loss === 'sparseCategoricalCrossentropy';
}

/**
 * Whether every label of this loss is a probability in [0, 1] (Keras's and tfjs's documented domain for
 * binary cross-entropy, and one-hot or probabilities for categorical); outside it the loss can go negative.
 */
export function takesProbabilities(loss: string): boolean {
  return loss === 'binaryCrossentropy' || loss === 'categoricalCrossentropy';
}

/** Whether the loss is a cross-entropy over the output's classes, which is always 0 over one class. */
export function needsClasses(loss: string): boolean {
  return loss === 'categoricalCrossentropy' || takesClassIndices(loss);
}

/**
 * The accuracy Keras means by 'accuracy' for `loss`: sparse categorical for class indices, binary
 * (threshold 0.5) for one output or binary cross-entropy, else categorical.
 */
export function accuracyFor(loss: string, outputUnits: number): SampleFunction {
  if (takesClassIndices(loss)) {
    return (labels, predictions) =>
      tf.cast(tf.equal(tf.argMax(predictions, -1), tf.cast(tf.reshape(labels, [-1]), 'int32')), 'float32');
  }
  if (loss === 'binaryCrossentropy' || outputUnits === 1) {
    return (labels, predictions) =>
      tf.mean(tf.cast(tf.equal(tf.greater(predictions, 0.5), tf.greater(labels, 0.5)), 'float32'), -1);
  }
  return (labels, predictions) =>
    tf.cast(tf.equal(tf.argMax(predictions, -1), tf.argMax(labels, -1)), 'float32');
}

/** Metric names besides 'accuracy' (and its Keras alias 'acc'). */
const NAMED_METRICS: Record<string, SampleFunction> = {
  mse: LOSSES.meanSquaredError,
  meanSquaredError: LOSSES.meanSquaredError,
  mae: LOSSES.meanAbsoluteError,
  meanAbsoluteError: LOSSES.meanAbsoluteError,
  binaryCrossentropy: LOSSES.binaryCrossentropy,
  categoricalCrossentropy: LOSSES.categoricalCrossentropy,
  sparseCategoricalCrossentropy: LOSSES.sparseCategoricalCrossentropy,
};

export const ACCURACY_NAMES = ['accuracy', 'acc'];

/**
 * Keras's short names (lower case: 'MSE' too) and the tfjs names they stand for. tfjs-layers takes none
 * as a loss and only mse, mae and mape as metrics, so they are suggested, not accepted (mse and mae
 * are metric names here as in tfjs).
 */
const KERAS_SHORT_NAMES: Readonly<Record<string, string>> = {
  mse: 'meanSquaredError',
  mae: 'meanAbsoluteError',
  mape: 'meanAbsolutePercentageError',
  msle: 'meanSquaredLogarithmicError',
  kld: 'kullbackLeiblerDivergence',
  bce: 'binaryCrossentropy',
  huber: 'huberLoss',
};

export function namedMetric(name: string): SampleFunction {
  const metric = Object.hasOwn(NAMED_METRICS, name) ? NAMED_METRICS[name] : undefined;
  if (metric === undefined) {
    const known = [...ACCURACY_NAMES, ...Object.keys(NAMED_METRICS)];
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `unknown metric "${name}"${didYouMean(name, known, KERAS_SHORT_NAMES)}; known: accuracy, ${Object.keys(NAMED_METRICS).join(', ')}, or a function`,
    );
  }
  return metric;
}

export function namedLoss(name: string): SampleFunction {
  const loss = Object.hasOwn(LOSSES, name) ? LOSSES[name as LossName] : undefined;
  if (loss === undefined) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `unknown loss "${name}"${didYouMean(name, LOSS_NAMES, KERAS_SHORT_NAMES)}; known: ${LOSS_NAMES.join(', ')}, or a function (labels, predictions) => one value per sample`,
    );
  }
  return loss;
}
