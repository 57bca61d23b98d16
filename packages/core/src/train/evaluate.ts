import { type SampleBatch, type SampleSet, sliceBatch, toSampleBatch } from '../data/samples.js';
import type { TaskModel } from '../task/task.js';
import type { BatchTotals } from './batch.js';
import { evaluateBatch } from './gradients.js';

/** Adds batch totals; evaluation and training both report sums and divide once at the end. */
export function addTotals(a: BatchTotals, b: BatchTotals): BatchTotals {
  return {
    lossSum: a.lossSum + b.lossSum,
    correct: a.correct + b.correct,
    // An empty total (no metrics yet) takes the other's.
    metricSums:
      a.metricSums.length === 0
        ? b.metricSums
        : a.metricSums.map((sum, index) => sum + (b.metricSums[index] ?? 0)),
    count: a.count + b.count,
  };
}

export const EMPTY_TOTALS: BatchTotals = { lossSum: 0, correct: 0, metricSums: [], count: 0 };

/**
 * Samples evaluated in one forward pass. A whole evaluation shard at once (thousands of images) is
 * three to five times slower on wasm: its activations outgrow the caches (docs/benchmarks.md).
 */
export const EVALUATION_CHUNK_SAMPLES = 512;

/** Loss and metric totals of `batch`, evaluated EVALUATION_CHUNK_SAMPLES at a time. */
export function evaluateInChunks(taskModel: TaskModel, batch: SampleBatch): BatchTotals {
  let totals = EMPTY_TOTALS;
  for (let start = 0; start < batch.count; start += EVALUATION_CHUNK_SAMPLES) {
    const end = Math.min(batch.count, start + EVALUATION_CHUNK_SAMPLES);
    totals = addTotals(totals, evaluateBatch(taskModel, sliceBatch(batch, start, end)));
  }
  return totals;
}

/** Loss and metric totals over every sample of `set`, each counted exactly once. */
export function evaluateSampleSet(taskModel: TaskModel, set: SampleSet): BatchTotals {
  const samples = { count: set.count, features: set.features.values, labels: set.labels.values };
  return evaluateInChunks(taskModel, toSampleBatch(samples, taskModel.conversion));
}

/** The figures a person reads: mean loss, accuracy when measured, and each metric's mean by name. */
export interface Evaluation {
  readonly loss: number;
  readonly accuracy?: number | undefined;
  readonly metrics: Readonly<Record<string, number>>;
}

export function evaluationOf(totals: BatchTotals, taskModel: TaskModel): Evaluation {
  const { objective } = taskModel;
  const metrics: Record<string, number> = {};
  if (objective.measuresAccuracy) metrics.accuracy = totals.correct / totals.count;
  objective.metricNames.forEach((name, index) => {
    metrics[name] = (totals.metricSums[index] ?? Number.NaN) / totals.count;
  });
  return {
    loss: totals.lossSum / totals.count,
    accuracy: objective.measuresAccuracy ? totals.correct / totals.count : undefined,
    metrics,
  };
}
