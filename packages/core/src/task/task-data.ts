/**
 * Checks a task's data against its model and loss before anything trains, so that a mismatch is one
 * clear error at the start instead of a failed step on some worker.
 */
import type { SampleSet } from '../data/samples.js';
import { sampleSize } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import { takesClassIndices, takesProbabilities } from './losses.js';
import { shapeText } from './shape-text.js';
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
      `features of shape ${shapeText(featureShape)} per sample do not fit the model's input ${shapeText(inputShape)}`,
    );
  }
  if (task.images && featureShape.length !== 2 && featureShape.length !== 3) {
    throw fail(
      `an image task's features are [rows, cols] or [rows, cols, channels] per sample, these are ${shapeText(featureShape)}`,
    );
  }
  // As many values as the input, in another order: PyTorch's images are channels first.
  const sameShape = featureShape.every((size, axis) => size === inputShape[axis]);
  if (task.images && featureShape.length === 3 && inputShape.length === 3 && !sameShape) {
    throw fail(
      `images of shape ${shapeText(featureShape)} per sample do not fit the model's input ${shapeText(inputShape)}` +
        (featureShape[0] === inputShape[2]
          ? ': channels first (as PyTorch keeps them)? Callosum takes images channels last, [rows, cols, channels]'
          : ''),
    );
  }
  const badFeature = firstNonFinite(set.features.values);
  if (badFeature !== undefined) {
    const sample = Math.floor(badFeature / sampleSize(featureShape));
    throw fail(`features of sample ${sample} hold ${set.features.values[badFeature]}`);
  }
  // Indices (an int32 input, or an Embedding's, which casts them) would take 0.9 as 0: refused, as
  // class indices are.
  if (takesIndices(model) && set.features.values instanceof Float32Array) {
    const fraction = firstOutside(set.features.values, -(2 ** 31), 2 ** 31 - 1, true);
    if (fraction !== undefined) {
      const sample = Math.floor(fraction / sampleSize(featureShape));
      throw fail(
        `features of sample ${sample} hold ${shown(set.features.values[fraction] as number)}, but the model takes indices there (an int32 input, or an Embedding): give integers`,
      );
    }
  }
  const labels = set.labels.values;
  const perSample = sampleSize(set.labels.sampleShape);
  // The label at flat index i, named by its sample when samples have more than one label value.
  const label = (i: number) =>
    perSample === 1
      ? `label ${i} is ${shown(labels[i] as number)}`
      : `labels of sample ${Math.floor(i / perSample)} hold ${shown(labels[i] as number)}`;
  const badLabel = firstNonFinite(labels);
  if (badLabel !== undefined) throw fail(label(badLabel));
  const outputUnits = model.outputs[0]?.shape.at(-1) ?? 1;
  const outputSize = sampleSize(model.outputs[0]?.shape.slice(1).map((dim) => dim ?? 1) ?? []);
  const labelShape = shapeText(set.labels.sampleShape);
  // The loss, then each metric that is a cross-entropy: their labels have a domain (a metric over labels
  // outside it reports nonsense, or fails on every worker).
  for (const { name, shown: what, isLoss } of objective.namedFunctions) {
    if (takesClassIndices(name)) {
      if (perSample !== 1) {
        throw fail(
          `${what} takes one class index per sample, the labels have shape ${labelShape}` +
            (isLoss && perSample === outputUnits ? ' (one-hot labels are for categoricalCrossentropy)' : ''),
        );
      }
      const bad = firstOutside(labels, 0, outputUnits - 1, true);
      if (bad !== undefined) {
        throw fail(
          `${label(bad)}; ${what} takes class indices, integers in 0..${outputUnits - 1} for a model with ${outputUnits} outputs`,
        );
      }
      continue;
    }
    if (!isLoss && !takesProbabilities(name)) continue;
    if (perSample !== outputSize) {
      const hint =
        perSample === 1 && takesProbabilities(name) && outputSize > 1
          ? ` (class indices are for sparseCategoricalCrossentropy)`
          : '';
      throw fail(
        `labels of shape ${labelShape} per sample do not fit the model's output of ${outputSize} values for ${what}${hint}`,
      );
    }
    if (takesProbabilities(name)) {
      const bad = firstOutside(labels, 0, 1);
      if (bad !== undefined) throw fail(`${label(bad)}; ${what} takes probabilities, numbers in [0, 1]`);
    }
  }
}

/** Whether the model's input is indices: int32, or read first by an Embedding (which truncates them). */
function takesIndices(model: TaskModel['model']): boolean {
  if (model.inputs[0]?.dtype === 'int32') return true;
  const first = model.layers.find((layer) => layer.getClassName() !== 'InputLayer');
  return first?.getClassName() === 'Embedding';
}

/** The first index of a value outside [min, max] (NaN included), or not an integer when `integers`. */
function firstOutside(
  values: ArrayLike<number>,
  min: number,
  max: number,
  integers = false,
): number | undefined {
  for (let i = 0; i < values.length; i++) {
    const value = values[i] as number;
    if (!(value >= min && value <= max) || (integers && !Number.isInteger(value))) return i;
  }
  return undefined;
}

function firstNonFinite(values: ArrayLike<number>): number | undefined {
  // Integer arrays hold finite values only: 47 million MNIST pixels took a quarter of a second to check.
  if (values instanceof Uint8Array || values instanceof Int32Array) return undefined;
  return firstOutside(values, -Number.MAX_VALUE, Number.MAX_VALUE);
}

/** A float32 value with the fewest digits that still read back as it (-2.9, not -2.9000000953674316). */
function shown(value: number): string {
  for (let digits = 1; digits < 17; digits++) {
    const short = Number(value.toPrecision(digits));
    if (Math.fround(short) === value) return String(short);
  }
  return String(value);
}
