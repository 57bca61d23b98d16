/**
 * A pass of the task's training and evaluation over a couple of samples of each split, before anything
 * trains: a loss or metric that throws or does not give one value per sample, an input a layer cannot
 * take (an Embedding index out of its range), a gradient that cannot be taken, is then one error at the
 * start naming the task and the split, instead of a step that fails on every worker, is retried and
 * stops the run mid-way (or an evaluation that fails after a whole epoch).
 */
import type { SampleBatch, SampleSet } from '../data/samples.js';
import { gatherSamples, toSampleBatch } from '../data/samples.js';
import { CallosumError, ErrorCodes, isCallosumError } from '../errors.js';
import type { Task, TaskData, TaskModel } from '../task/task.js';
import { computeGradients, evaluateBatch } from './gradients.js';

/** How many samples of each split the probe passes through the model. */
const PROBE_SAMPLES = 2;

/** Changes no weight: a step's pass reports BatchNormalization's statistics rather than moving them. */
export function probeTask(task: Task, data: TaskData, taskModel: TaskModel): void {
  for (const [which, set] of Object.entries(data) as [string, SampleSet | undefined][]) {
    if (set !== undefined && set.count > 0) probeSplit(task, which, set, taskModel);
  }
}

/** The first two samples of `set` (one if it has one) as the model takes them: what a probe passes through. */
export function probeBatch(set: SampleSet, taskModel: TaskModel): SampleBatch {
  const indices = Array.from({ length: Math.min(PROBE_SAMPLES, set.count) }, (_, index) => index);
  return toSampleBatch(
    { ...gatherSamples(set, indices), keys: Uint32Array.from(indices) },
    taskModel.conversion,
  );
}

function probeSplit(task: Task, which: string, set: SampleSet, taskModel: TaskModel): void {
  const batch = probeBatch(set, taskModel);
  // The train split as a worker computes a step; the others as an evaluation reads them.
  const pass = which === 'train' ? 'a training step' : 'an evaluation';
  try {
    if (which === 'train') computeGradients(taskModel, batch);
    else evaluateBatch(taskModel, batch);
  } catch (error) {
    const where = `(${pass} over ${batch.count} samples of the ${which} data, before training)`;
    if (isCallosumError(error, ErrorCodes.TASK_INVALID)) {
      throw new CallosumError(ErrorCodes.TASK_INVALID, `${error.message} ${where}`, { cause: error });
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new CallosumError(
      ErrorCodes.TASK_INVALID,
      `task ${task.name}: ${pass} failed ${where}: ${reason}`,
      {
        cause: error,
      },
    );
  }
}
