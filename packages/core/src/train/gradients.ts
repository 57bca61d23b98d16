import type { Tensor } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import type { SampleBatch } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import { flattenTensors, trainableVariables } from '../params/layout.js';
import { withSampleKeys } from '../task/dropout.js';
import { inputSampleShape, type TaskModel } from '../task/task.js';
import type { BatchTotals, GradientResult } from './batch.js';
import { withBatchStatistics, withStatisticEntries } from './statistics.js';
import {
  type BatchNormPass,
  checkSynchronisablePass,
  globalStatisticValue,
  measureAdjoint,
  measureMoments,
  type ShardMoments,
  type SyncedStatistics,
  withSyncedStatistics,
} from './sync-batch-norm.js';

function inputTensors(
  { model, conversion }: TaskModel,
  batch: SampleBatch,
): { input: Tensor; labels: Tensor } {
  const sampleShape = inputSampleShape(model);
  const sampleSize = sampleShape.reduce((product, dim) => product * dim, 1);
  if (batch.features.length !== batch.count * sampleSize) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `batch of ${batch.count} needs ${batch.count * sampleSize} feature values for the model's input ` +
        `[${sampleShape.join(', ')}], got ${batch.features.length}`,
    );
  }
  if (batch.count === 0 || batch.labels.length % batch.count !== 0) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `batch of ${batch.count} samples has ${batch.labels.length} label values`,
    );
  }
  const labelsPerSample = batch.labels.length / batch.count;
  return {
    input: tf.tensor(batch.features, [batch.count, ...sampleShape], conversion.featureDtype),
    labels: tf.tensor(
      batch.labels,
      labelsPerSample === 1 ? [batch.count] : [batch.count, labelsPerSample],
      conversion.labelDtype,
    ),
  };
}

/** Reads scalar sums back once the tensors exist. */
function totalsOf(
  sums: { loss: Tensor; correct: Tensor | undefined; metrics: readonly Tensor[] },
  count: number,
): BatchTotals {
  return {
    lossSum: sums.loss.dataSync()[0] as number,
    correct: sums.correct === undefined ? 0 : (sums.correct.dataSync()[0] as number),
    metricSums: sums.metrics.map((metric) => metric.dataSync()[0] as number),
    count,
  };
}

/**
 * Gradient of the summed loss over `batch` with respect to all trainable parameters, and each
 * statistic's batch value times the batch's samples, as one flat vector (written into `into` when
 * given, e.g. the frame that will carry it), plus the batch totals. Creates no lasting tensors.
 */
export function computeGradients(
  taskModel: TaskModel,
  batch: SampleBatch,
  into: Float32Array = new Float32Array(taskModel.layout.totalSize),
  synced?: SyncedStatistics,
): GradientResult {
  const { model, layout, objective } = taskModel;
  if (batch.count === 0) {
    into.fill(0);
    return {
      gradient: into,
      lossSum: 0,
      correct: 0,
      metricSums: objective.metricNames.map(() => 0),
      count: 0,
    };
  }
  const variables = trainableVariables(model);
  // Sums kept out of the gradient tape; tidy does not free kept tensors, so a failed pass must.
  let kept: { loss: Tensor | undefined; correct: Tensor | undefined; metrics: Tensor[] } = {
    loss: undefined,
    correct: undefined,
    metrics: [],
  };
  const forward = () => {
    const { loss, correct, metrics } = trainingSumsOf(taskModel, batch);
    kept = {
      loss: tf.keep(loss),
      correct: correct && tf.keep(correct),
      metrics: metrics.map((metric) => tf.keep(metric)),
    };
    return loss;
  };
  // What is differentiated: the summed loss, plus (synchronised BatchNormalization) the surrogates.
  const backward = (objectiveOf: (forward: () => Tensor) => Tensor) =>
    withSampleKeys(batch.keys, () => {
      const { grads } = tf.variableGrads(() => objectiveOf(forward) as tf.Scalar, variables);
      return { gradients: variables.map((variable) => grads[variable.name] as Tensor) };
    });
  // Only tensors leave the tidy: tidy walks its result looking for tensors, and walking a
  // 700k-element Float32Array key by key costs more than the whole backward pass.
  const pass = () =>
    tf.tidy(() => {
      if (synced === undefined) {
        return withBatchStatistics(model, layout, batch.count, () => backward((loss) => loss()));
      }
      const { gradients } = withSyncedStatistics(model, synced, backward);
      return {
        vector: withStatisticEntries(
          model,
          layout,
          gradients,
          globalStatisticValue(model, synced, batch.count),
        ),
      };
    });
  let vector: Tensor[];
  try {
    vector = pass().vector;
  } catch (error) {
    tf.dispose([kept.loss, kept.correct, ...kept.metrics].filter((tensor) => tensor !== undefined));
    throw error;
  }
  const sums = { loss: kept.loss as Tensor, correct: kept.correct, metrics: kept.metrics };
  try {
    const totals = totalsOf(sums, batch.count);
    return { gradient: flattenTensors(vector, layout, into), ...totals };
  } finally {
    tf.dispose([sums.loss, ...(sums.correct ? [sums.correct] : []), ...sums.metrics, ...vector]);
  }
}

/** A training forward pass over `batch`: its summed loss, accuracy and metrics. */
function trainingSumsOf(taskModel: TaskModel, batch: SampleBatch) {
  const { input, labels } = inputTensors(taskModel, batch);
  return taskModel.objective.trainingSums(taskModel.model, input, labels);
}

/** The training forward pass over `batch` returning its summed loss, its dropout masks drawn per sample. */
function summedLoss(taskModel: TaskModel, batch: SampleBatch): () => Tensor {
  return () => withSampleKeys(batch.keys, () => trainingSumsOf(taskModel, batch).loss);
}

/** A moments pass of a synchronised BatchNormalization step (sync-batch-norm.ts) over `batch`. */
export function computeShardMoments(
  taskModel: TaskModel,
  batch: SampleBatch,
  pass: Extract<BatchNormPass, { kind: 'moments' }>,
): ShardMoments {
  return measureMoments(taskModel.model, pass, summedLoss(taskModel, batch));
}

/**
 * Throws TASK_INVALID, naming the layer, where synchronised BatchNormalization cannot train the model,
 * after one training forward pass over `batch` (a couple of samples do): so that a run refuses such a
 * model before it starts rather than in every worker's first pass.
 */
export function checkSynchronisable(taskModel: TaskModel, batch: SampleBatch): void {
  checkSynchronisablePass(taskModel.model, summedLoss(taskModel, batch));
}

/** An adjoint pass of a synchronised BatchNormalization step (sync-batch-norm.ts) over `batch`. */
export function computeShardAdjoint(
  taskModel: TaskModel,
  batch: SampleBatch,
  pass: Extract<BatchNormPass, { kind: 'adjoint' }>,
): Float32Array {
  return measureAdjoint(taskModel.model, pass, summedLoss(taskModel, batch));
}

/** Loss and metric totals of the model on `batch`, without gradients, as plain tfjs evaluates them. */
export function evaluateBatch(taskModel: TaskModel, batch: SampleBatch): BatchTotals {
  if (batch.count === 0)
    return { lossSum: 0, correct: 0, metricSums: taskModel.objective.metricNames.map(() => 0), count: 0 };
  const sums = tf.tidy(() => {
    const { input, labels } = inputTensors(taskModel, batch);
    const { loss, correct, metrics } = taskModel.objective.evaluationSums(taskModel.model, input, labels);
    return { loss, correct, metrics: [...metrics] };
  });
  try {
    return totalsOf(sums, batch.count);
  } finally {
    tf.dispose(sums);
  }
}
