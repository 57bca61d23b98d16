/**
 * A user's task (what defineTask returned) as the trainer's Task: calls its factories with errors that
 * name the task, and turns its tensors or arrays into sample sets.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { SampleSet, SampleTensor, SampleValues } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import { didYouMean } from '../options/did-you-mean.js';
import { shownWithType } from '../options/schema.js';
import type { TrainingOptions } from '../train/config.js';
import type { DefinedTask, TaskArray, TaskSplit } from './define-task.js';
import { namingTask } from './naming-task.js';
import { shapeText } from './shape-text.js';
import type { Task, TaskData } from './task.js';
import { taskOptimizer } from './task-optimizer.js';

const SPLITS = ['train', 'validation', 'test'];
const SPLIT_ALIASES = { val: 'validation', valid: 'validation', dev: 'validation', eval: 'validation' };
const SPLIT_FIELDS = ['xs', 'ys'];
/** Other libraries' names for a split's fields, and what Callosum does not take (keyed in lower case). */
const SPLIT_FIELD_ALIASES = {
  x: 'xs',
  y: 'ys',
  features: 'xs',
  labels: 'ys',
  sampleweight: 'per-sample weights',
  sampleweights: 'per-sample weights',
  weights: 'per-sample weights',
};

export function taskFromDefinition(definition: DefinedTask, name: string): Task {
  const fail = (problem: string, cause?: unknown) =>
    new CallosumError(ErrorCodes.TASK_INVALID, `task ${name}: ${problem}`, { cause });
  return {
    name,
    buildModel: (seed) => {
      let model: unknown;
      try {
        model = definition.model({ seed });
      } catch (error) {
        throw fail(`its model factory threw: ${messageOf(error)}`, error);
      }
      if (!isLayersModel(model)) throw fail('its model factory must return a tf.LayersModel');
      return model;
    },
    loadData: async () => {
      let splits: Awaited<ReturnType<DefinedTask['data']>>;
      try {
        splits = await definition.data();
      } catch (error) {
        throw fail(`its data function threw: ${messageOf(error)}`, error);
      }
      if (typeof splits !== 'object' || splits === null || splits.train === undefined) {
        throw fail('its data function must return { train: { xs, ys }, validation?, test? }');
      }
      // A misspelt split (`valid`) would otherwise be dropped, and the run would never evaluate.
      const unknownSplit = Object.keys(splits).find((key) => !SPLITS.includes(key));
      if (unknownSplit !== undefined) {
        throw fail(
          `its data function returned a split "${unknownSplit}"${didYouMean(unknownSplit, SPLITS, SPLIT_ALIASES)}; splits: ${SPLITS.join(', ')}`,
        );
      }
      const data: TaskData = {
        train: sampleSet(splits.train, 'train', fail),
        validation: splits.validation && sampleSet(splits.validation, 'validation', fail),
        test: splits.test && sampleSet(splits.test, 'test', fail),
      };
      return data;
    },
    loss: definition.loss,
    metrics: definition.metrics ?? [],
    images: definition.images === true,
    defaults: namingTask(name, () => taskDefaults(definition)),
  };
}

/** Keras's defaults where the task says nothing: Adam at 0.001, a constant rate, no augmentation. */
function taskDefaults(definition: DefinedTask): TrainingOptions {
  const { optimizer, learningRate } = taskOptimizer(definition.optimizer ?? 'adam');
  return {
    optimizer,
    learningRate: learningRate ?? 0.001,
    schedule: { kind: 'constant' },
    maxShift: 0,
    epochs: definition.epochs,
    batchSize: definition.batchSize,
  };
}

/** A split ({ xs, ys }) as a sample set; `fail` makes the error for what is wrong with it. */
export function sampleSet(split: TaskSplit, which: string, fail: (problem: string) => Error): SampleSet {
  if (typeof split !== 'object' || split === null) throw fail(`data ${which} must be { xs, ys }`);
  const unknownField = Object.keys(split).find((key) => !SPLIT_FIELDS.includes(key));
  if (unknownField !== undefined) {
    throw fail(
      `data ${which} has a field "${unknownField}"${didYouMean(unknownField, SPLIT_FIELDS, SPLIT_FIELD_ALIASES)}; a split is { xs, ys }`,
    );
  }
  const features = sampleTensor(split.xs, `${which}.xs`, fail);
  const labels = sampleTensor(split.ys, `${which}.ys`, fail);
  const count = features.count;
  if (labels.count !== count) {
    throw fail(`data ${which} has ${count} samples in xs but ${labels.count} in ys`);
  }
  if (count === 0) throw fail(`data ${which} has no samples`);
  return { count, features: features.tensor, labels: labels.tensor };
}

function sampleTensor(
  array: TaskArray,
  what: string,
  fail: (problem: string) => Error,
): { count: number; tensor: SampleTensor } {
  let values: SampleValues;
  let shape: readonly number[];
  if (array instanceof tf.Tensor) {
    if (array.dtype !== 'float32' && array.dtype !== 'int32') {
      throw fail(`data ${what} is a ${array.dtype} tensor; features and labels must be float32 or int32`);
    }
    values = array.dataSync() as Float32Array | Int32Array;
    shape = array.shape;
  } else if (typeof array === 'object' && array !== null && 'values' in array && Array.isArray(array.shape)) {
    values = Array.isArray(array.values)
      ? numberArrayValues(array.values, what, fail)
      : (array.values as SampleValues);
    shape = array.shape;
    if (!(values instanceof Float32Array || values instanceof Int32Array || values instanceof Uint8Array)) {
      throw fail(`data ${what}.values must be a Float32Array, Int32Array, Uint8Array or number[]`);
    }
    const expected = shape.reduce((product, dim) => product * dim, 1);
    if (values.length !== expected) {
      throw fail(`data ${what} has ${values.length} values, its shape ${shapeText(shape)} needs ${expected}`);
    }
  } else {
    throw fail(`data ${what} must be a tf.Tensor or { values, shape }`);
  }
  if (shape.length === 0) throw fail(`data ${what} is a scalar; its first dimension must be the samples`);
  const [count, ...sampleShape] = shape as [number, ...number[]];
  return { count, tensor: { values, sampleShape } };
}

/**
 * A number[]'s values as float32. Float32Array.from would read a nested array's one-element rows and
 * strings as numbers, and anything else as NaN: they are refused, saying what to give.
 */
function numberArrayValues(
  values: readonly unknown[],
  what: string,
  fail: (problem: string) => Error,
): Float32Array {
  const at = values.findIndex((value) => typeof value !== 'number');
  if (at >= 0 && Array.isArray(values[at])) {
    throw fail(
      `data ${what}.values is a nested array; { values, shape } takes the values flat, sample after sample: give { values: values.flat(Infinity), shape: ${shapeText(nestedShape(values))} }, or tf.tensor(values)`,
    );
  }
  if (at >= 0)
    throw fail(`data ${what}.values[${at}] is ${shownWithType(values[at])}; a number[] holds numbers`);
  return Float32Array.from(values as readonly number[]);
}

/** The shape nested arrays spell, along their first elements. */
function nestedShape(values: unknown): number[] {
  const shape: number[] = [];
  for (let level = values; Array.isArray(level); level = level[0]) shape.push(level.length);
  return shape;
}

function isLayersModel(value: unknown): value is LayersModel {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as LayersModel).inputs) &&
    typeof (value as LayersModel).apply === 'function' &&
    Array.isArray((value as LayersModel).weights)
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
