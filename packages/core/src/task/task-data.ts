/**
 * Checks a task's data against its model and loss before anything trains, so that a mismatch is one
 * clear error at the start instead of a failed step on some worker.
 */
import type { SampleSet } from '../data/samples.js';
import { sampleSize } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import { takesClassIndices } from './losses.js';
import { inputSampleShape, type Task, type TaskData, type TaskModel } from './task.js';

export function checkTaskData(task: Task, data: TaskData, taskModel: TaskModel): void {
  for (const [which, set] of Object.entries(data)) {
    if (set !== undefined) checkSet(task, which, set as SampleSet, taskModel);
  }
}

function checkSet(task: Task, which: string, set: SampleSet, { model, objective }: TaskModel): void {
  const fail = (problem: string) =>
    new CallosumError(ErrorCodes.TASK_INVALID, `task ${task.name}: ${which} data: ${problem}`);
  const inputShape = inputSampleShape(model);
  const featureShape = set.features.sampleShape;
  if (sampleSize(featureShape) !== sampleSize(inputShape)) {
    throw fail(
      `features of shape [${featureShape.join(', ')}] per sample do not fit the model's input [${inputShape.join(', ')}]`,
    );
  }
  if (task.images && featureShape.length !== 2 && featureShape.length !== 3) {
    throw fail(
      `an image task's features are [rows, cols] or [rows, cols, channels] per sample, these are [${featureShape.join(', ')}]`,
    );
  }
  const badFeature = firstNonFinite(set.features.values);
  if (badFeature !== undefined) {
    const sample = Math.floor(badFeature / sampleSize(featureShape));
    throw fail(`features of sample ${sample} hold ${set.features.values[badFeature]}`);
  }
  const labels = set.labels.values;
  const badLabel = firstNonFinite(labels);
  if (badLabel !== undefined) throw fail(`label ${badLabel} is ${labels[badLabel]}`);
  const outputUnits = model.outputs[0]?.shape.at(-1) ?? 1;
  if (takesClassIndices(objective.lossName)) {
    if (sampleSize(set.labels.sampleShape) !== 1) {
      throw fail(
        `${objective.lossName} takes one class index per sample, the labels have shape [${set.labels.sampleShape.join(', ')}]`,
      );
    }
    for (const [index, label] of labels.entries()) {
      if (!Number.isInteger(label) || label < 0 || label >= outputUnits) {
        throw fail(
          `label ${index} is ${label}; ${objective.lossName} takes class indices, integers in 0..${outputUnits - 1} for a model with ${outputUnits} outputs`,
        );
      }
    }
  } else {
    const outputSize = sampleSize(model.outputs[0]?.shape.slice(1).map((dim) => dim ?? 1) ?? []);
    if (sampleSize(set.labels.sampleShape) !== outputSize) {
      throw fail(
        `labels of shape [${set.labels.sampleShape.join(', ')}] per sample do not fit the model's output of ${outputSize} values for ${objective.lossName}`,
      );
    }
  }
}

function firstNonFinite(values: ArrayLike<number>): number | undefined {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i] as number)) return i;
  }
  return undefined;
}
