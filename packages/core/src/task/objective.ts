/**
 * What a task minimises and reports, in sum form: for a batch, the sum over its samples of the loss,
 * of the accuracy (when the task measures it) and of every other metric. Sums, not means, so that
 * shards of one global batch add up exactly and the coordinator divides once.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { CallosumError, ErrorCodes } from '../errors.js';
import { forwardLogits, hasSoftmaxHead } from '../train/logits.js';
import {
  ACCURACY_NAMES,
  accuracyFor,
  namedLoss,
  namedMetric,
  oneHotLike,
  type SampleFunction,
  takesClassIndices,
} from './losses.js';

/** A loss or metric as a task gives it: a tfjs name, or a function giving one value per sample. */
export type LossSpec = string | SampleFunction;

/** Batch sums, as scalars still on the backend. */
export interface ObjectiveSums {
  readonly loss: tf.Scalar;
  /** Samples counted as correct; absent when the task does not measure accuracy. */
  readonly correct: tf.Scalar | undefined;
  /** One sum per metric of `Objective.metricNames`, in that order. */
  readonly metrics: readonly tf.Scalar[];
}

export class Objective {
  /** The loss's name (a function's own name, or "custom"), for logs and the task fingerprint. */
  readonly lossName: string;
  readonly measuresAccuracy: boolean;
  /** The metrics other than accuracy, by name, in the task's order. */
  readonly metricNames: readonly string[];
  /** Class-index labels travel and reach the loss as int32; every other loss takes float32 labels. */
  readonly labelDtype: 'int32' | 'float32';
  readonly #loss: SampleFunction;
  readonly #metrics: readonly SampleFunction[];
  readonly #accuracy: SampleFunction | undefined;
  /** Cross-entropy on a softmax head is computed from the logits, which is stable (see logits.ts). */
  readonly #fromLogits: boolean;

  /**
   * The loss, then each metric other than accuracy, with how messages name it ("metric mae" for a
   * metric): for the checks that hold labels and outputs against each.
   */
  get namedFunctions(): { readonly name: string; readonly shown: string; readonly isLoss: boolean }[] {
    return [
      { name: this.lossName, shown: this.lossName, isLoss: true },
      ...this.metricNames.map((name) => ({ name, shown: `metric ${name}`, isLoss: false })),
    ];
  }

  constructor(model: LayersModel, loss: LossSpec, metrics: readonly LossSpec[] = []) {
    this.lossName = typeof loss === 'string' ? loss : loss.name || 'custom';
    this.#loss = typeof loss === 'string' ? namedLoss(loss) : loss;
    const outputUnits = model.outputs[0]?.shape.at(-1) ?? 1;
    this.measuresAccuracy = metrics.some(
      (metric) => typeof metric === 'string' && ACCURACY_NAMES.includes(metric),
    );
    this.#accuracy = this.measuresAccuracy ? accuracyFor(this.lossName, outputUnits) : undefined;
    const others = metrics.filter(
      (metric) => !(typeof metric === 'string' && ACCURACY_NAMES.includes(metric)),
    );
    this.metricNames = others.map((metric, index) =>
      typeof metric === 'string' ? metric : metric.name || `metric${index}`,
    );
    this.#metrics = others.map((metric) => (typeof metric === 'string' ? namedMetric(metric) : metric));
    this.labelDtype = takesClassIndices(this.lossName) ? 'int32' : 'float32';
    this.#fromLogits =
      typeof loss === 'string' &&
      (loss === 'sparseCategoricalCrossentropy' || loss === 'categoricalCrossentropy') &&
      hasSoftmaxHead(model);
  }

  /** The sums of a training forward pass (layers in training mode); call inside a gradient tape. */
  trainingSums(model: LayersModel, input: tf.Tensor, labels: tf.Tensor): ObjectiveSums {
    if (!this.#fromLogits) return this.#sums(model.apply(input, { training: true }) as tf.Tensor, labels);
    const logits = forwardLogits(model, input, true);
    const oneHot = this.#oneHot(labels, logits);
    const loss = tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)))) as tf.Scalar;
    // Accuracy and metrics are read off the logits' softmax, which the loss above never materialises.
    return { loss, ...this.#metricSums(tf.softmax(logits), labels) };
  }

  /** The sums of an inference pass: the formulas plain tfjs evaluates a saved model with. */
  evaluationSums(model: LayersModel, input: tf.Tensor, labels: tf.Tensor): ObjectiveSums {
    return this.#sums(model.apply(input, { training: false }) as tf.Tensor, labels);
  }

  #sums(predictions: tf.Tensor, labels: tf.Tensor): ObjectiveSums {
    return {
      loss: this.#sampleSum(`loss ${this.lossName}`, this.#loss, predictions, labels),
      ...this.#metricSums(predictions, labels),
    };
  }

  #metricSums(predictions: tf.Tensor, labels: tf.Tensor): Omit<ObjectiveSums, 'loss'> {
    return {
      correct:
        this.#accuracy === undefined
          ? undefined
          : this.#sampleSum('accuracy', this.#accuracy, predictions, labels),
      metrics: this.#metrics.map((metric, index) =>
        this.#sampleSum(`metric ${this.metricNames[index]}`, metric, predictions, labels),
      ),
    };
  }

  /** The sum over the batch of `fn`, which must give one value per sample. */
  #sampleSum(what: string, fn: SampleFunction, predictions: tf.Tensor, labels: tf.Tensor): tf.Scalar {
    const count = predictions.shape[0] as number;
    const values = fn(
      this.labelDtype === 'int32' ? classIndexColumn(labels) : this.#labelsLike(labels, predictions),
      predictions,
    );
    if (values.rank !== 1 || values.shape[0] !== count) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `${what} must give one value per sample (shape [${count}]), gave shape [${values.shape.join(', ')}]`,
      );
    }
    return tf.sum(values);
  }

  #oneHot(labels: tf.Tensor, logits: tf.Tensor): tf.Tensor {
    return this.labelDtype === 'int32' ? oneHotLike(labels, logits) : this.#labelsLike(labels, logits);
  }

  /** Labels reshaped to the predictions' shape when they hold as many values ([n] against [n, 1]). */
  #labelsLike(labels: tf.Tensor, predictions: tf.Tensor): tf.Tensor {
    if (
      labels.shape.length === predictions.shape.length &&
      labels.shape.every((d, i) => d === predictions.shape[i])
    ) {
      return labels;
    }
    if (labels.size !== predictions.size) {
      throw new CallosumError(
        ErrorCodes.SHAPE_MISMATCH,
        `labels of shape [${labels.shape.join(', ')}] do not fit the model's output [${predictions.shape.join(', ')}] for loss ${this.lossName}`,
      );
    }
    return tf.reshape(labels, predictions.shape);
  }
}

/** Class indices as tfjs hands them to metrics: one column, [n, 1]. */
function classIndexColumn(labels: tf.Tensor): tf.Tensor {
  return labels.rank === 1 ? tf.reshape(labels, [-1, 1]) : labels;
}
