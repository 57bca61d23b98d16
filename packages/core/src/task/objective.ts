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
import { shapeText } from './shape-text.js';

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

/**
 * What a task's `metrics` report, without building its model: whether accuracy is among them, and the
 * names of the others in their order (a function's own name, else `metric<i>`), as the Objective names them.
 */
export function metricNamesOf(metrics: readonly LossSpec[]): {
  measuresAccuracy: boolean;
  metricNames: string[];
} {
  return {
    measuresAccuracy: metrics.some(isAccuracy),
    metricNames: otherMetrics(metrics).map(({ name }) => name),
  };
}

/**
 * Why `metrics` (each a name or a function) cannot be reported as they are, if so, as the rest of a
 * sentence that begins with "`metrics` ": two of them under one name (accuracy however spelt; a
 * function named "accuracy" or "acc" when accuracy is measured, which evaluations report as "accuracy"
 * and fit's logs as "acc"), or one named like a figure that fit's logs report beside it: "loss", or
 * "val_" and a figure of the epoch, which the validation figure of that name would replace.
 */
export function metricNamesProblem(metrics: readonly LossSpec[]): string | undefined {
  const hide = 'so one would hide the other (give each function its own name)';
  if (metrics.filter(isAccuracy).length > 1) {
    return `names "accuracy" twice: each metric is reported under its name, ${hide}`;
  }
  const { measuresAccuracy, metricNames } = metricNamesOf(metrics);
  const repeated = metricNames.find((name, index) => metricNames.indexOf(name) !== index);
  if (repeated !== undefined) {
    return `names "${repeated}" twice: each metric is reported under its name, ${hide}`;
  }
  const asAccuracy = measuresAccuracy ? metricNames.find((name) => ACCURACY_NAMES.includes(name)) : undefined;
  if (asAccuracy !== undefined) {
    return `names "${asAccuracy}" beside accuracy, which evaluations report as "accuracy" and fit's logs as "acc": ${hide}`;
  }
  if (metricNames.includes('loss')) {
    return `names a function "loss": fit's logs report the loss as "loss", ${hide}`;
  }
  const figures = ['loss', ...(measuresAccuracy ? ['acc'] : []), ...metricNames];
  const validationName = metricNames.find((name) => figures.some((figure) => name === `val_${figure}`));
  if (validationName !== undefined) {
    return `names a function "${validationName}": fit's logs report the validation ${validationName.slice(4)} under that name, ${hide}`;
  }
  return undefined;
}

function isAccuracy(metric: LossSpec): boolean {
  return typeof metric === 'string' && ACCURACY_NAMES.includes(metric);
}

/** The metrics other than accuracy, with their positions in `metrics` and their names. */
function otherMetrics(metrics: readonly LossSpec[]): { metric: LossSpec; position: number; name: string }[] {
  return metrics
    .flatMap((metric, position) => (isAccuracy(metric) ? [] : [{ metric, position }]))
    .map(({ metric, position }, index) => ({
      metric,
      position,
      name: typeof metric === 'string' ? metric : metric.name || `metric${index}`,
    }));
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
  /** How messages name the loss, then each metric of `metricNames` (see shownLoss and shownMetric). */
  readonly #shown: readonly string[];
  /** Starts the messages of errors in a pass: "task spam: ", or nothing for an objective of no task. */
  readonly #prefix: string;

  /**
   * The loss, then each metric other than accuracy, with how messages name it ("metric mae" for a
   * metric): for the checks that hold labels and outputs against each.
   */
  get namedFunctions(): { readonly name: string; readonly shown: string; readonly isLoss: boolean }[] {
    return [this.lossName, ...this.metricNames].map((name, index) => ({
      name,
      shown: this.#shown[index] as string,
      isLoss: index === 0,
    }));
  }

  /** `task` names the task in the errors of a pass (a loss function that throws, say). */
  constructor(model: LayersModel, loss: LossSpec, metrics: readonly LossSpec[] = [], task?: string) {
    this.lossName = typeof loss === 'string' ? loss : loss.name || 'custom';
    this.#loss = typeof loss === 'string' ? namedLoss(loss) : loss;
    const outputUnits = model.outputs[0]?.shape.at(-1) ?? 1;
    const others = otherMetrics(metrics);
    this.measuresAccuracy = metrics.some(isAccuracy);
    this.metricNames = others.map(({ name }) => name);
    this.#accuracy = this.measuresAccuracy ? accuracyFor(this.lossName, outputUnits) : undefined;
    this.#metrics = others.map(({ metric }) => (typeof metric === 'string' ? namedMetric(metric) : metric));
    this.#shown = [shownLoss(loss), ...others.map(({ metric, position }) => shownMetric(metric, position))];
    this.#prefix = task === undefined ? '' : `task ${task}: `;
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
      loss: this.#sampleSum(this.#shown[0] as string, this.#loss, predictions, labels),
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
        this.#sampleSum(this.#shown[index + 1] as string, metric, predictions, labels),
      ),
    };
  }

  /**
   * The sum over the batch of `fn`, which must give one value per sample; what it throws is rethrown
   * naming the task and `what` it is, with the cause.
   */
  #sampleSum(what: string, fn: SampleFunction, predictions: tf.Tensor, labels: tf.Tensor): tf.Scalar {
    const count = predictions.shape[0] as number;
    const fnLabels =
      this.labelDtype === 'int32' ? classIndexColumn(labels) : this.#labelsLike(labels, predictions);
    let values: tf.Tensor;
    try {
      values = fn(fnLabels, predictions);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new CallosumError(ErrorCodes.TASK_INVALID, `${this.#prefix}${what} threw: ${reason}`, {
        cause: error,
      });
    }
    if (values.rank !== 1 || values.shape[0] !== count) {
      throw new CallosumError(
        ErrorCodes.TASK_INVALID,
        `${this.#prefix}${what} must give one value per sample (shape [${count}]), gave shape ${shapeText(values.shape)}`,
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
        `${this.#prefix}labels of shape ${shapeText(labels.shape)} do not fit the model's output ${shapeText(predictions.shape)} for ${this.#shown[0]}`,
      );
    }
    return tf.reshape(labels, predictions.shape);
  }
}

/**
 * How messages name a loss: a tfjs name as it is, a function by its name as "loss <name>", and an
 * anonymous one (or one named only after the `loss` key it was written at) as "the loss function".
 */
function shownLoss(loss: LossSpec): string {
  if (typeof loss === 'string') return loss;
  return loss.name === '' || loss.name === 'loss' ? 'the loss function' : `loss ${loss.name}`;
}

/** How messages name a metric: "metric <name>", or an anonymous function by its `position` in the metrics. */
function shownMetric(metric: LossSpec, position: number): string {
  if (typeof metric === 'string') return `metric ${metric}`;
  return metric.name === '' ? `the metric function at metrics[${position}]` : `metric ${metric.name}`;
}

/** Class indices as tfjs hands them to metrics: one column, [n, 1]. */
function classIndexColumn(labels: tf.Tensor): tf.Tensor {
  return labels.rank === 1 ? tf.reshape(labels, [-1, 1]) : labels;
}
