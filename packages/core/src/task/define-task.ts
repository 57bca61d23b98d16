/**
 * The user-facing shape of a task: what a team hands Callosum to train (a model factory, data, a loss,
 * metrics, defaults), spelled as Keras and tfjs spell it. A task module default-exports
 * `defineTask({...})`; `callosum train|coordinator|worker --task <module>` and `trainLocal({ task })`
 * take it.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { SampleValues } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import { unknownOption } from '../optim/validation.js';
import { shownWithType } from '../options/schema.js';
import type { SampleFunction } from './losses.js';
import { metricNamesProblem } from './objective.js';

/** Features or labels: a tensor, or raw values with their shape (first dimension: the samples). */
export type TaskArray =
  | Tensor
  | { readonly values: SampleValues | readonly number[]; readonly shape: readonly number[] };

export interface TaskSplit {
  readonly xs: TaskArray;
  readonly ys: TaskArray;
}

export interface TaskDataSplits {
  readonly train: TaskSplit;
  readonly validation?: TaskSplit | undefined;
  readonly test?: TaskSplit | undefined;
}

/** An optimizer as Keras's compile takes it: a name, or a name with settings. */
export type TaskOptimizer =
  | string
  | { readonly name: string; readonly learningRate?: number; readonly [setting: string]: unknown };

export interface TaskDefinition {
  /**
   * Builds the model. `seed` is the run's seed: pass it to the initializers so every process builds the
   * same initial weights (the coordinator's are the ones trained, whatever the workers build).
   */
  readonly model: (context: { readonly seed: number }) => LayersModel;
  /** Called only where data is needed: the coordinator and trainLocal, never a worker. */
  readonly data: () => TaskDataSplits | Promise<TaskDataSplits>;
  /** A tfjs loss name or a function giving one value per sample. */
  readonly loss: string | SampleFunction;
  /** 'accuracy' (resolved for the loss, as Keras does), 'mse', 'mae', or functions. */
  readonly metrics?: readonly (string | SampleFunction)[] | undefined;
  readonly optimizer?: TaskOptimizer | undefined;
  /**
   * The samples are images ([rows, cols] or [rows, cols, channels] per sample): a run may then shift them
   * at random in training (`maxShift`, --max-shift), which no other task allows.
   */
  readonly images?: boolean | undefined;
  /** Run defaults; the options of a run (CLI flags) override them. */
  readonly epochs?: number | undefined;
  readonly batchSize?: number | undefined;
}

/** What defineTask returns: the definition, checked and marked so that a loader can recognise it. */
export interface DefinedTask extends TaskDefinition {
  readonly [DEFINED_TASK]: true;
}

const DEFINED_TASK = Symbol.for('callosum.task');

/** Every field's name: `satisfies` makes the compiler say when a field is added and not listed. */
const TASK_DEFINITION_FIELDS: readonly string[] = Object.keys({
  model: true,
  data: true,
  loss: true,
  metrics: true,
  optimizer: true,
  images: true,
  epochs: true,
  batchSize: true,
} satisfies Record<keyof TaskDefinition, true>);

export function defineTask(definition: TaskDefinition): DefinedTask {
  const problem = definitionProblem(definition);
  if (problem !== undefined) throw new CallosumError(ErrorCodes.TASK_INVALID, `defineTask: ${problem}`);
  return Object.freeze({ ...definition, [DEFINED_TASK]: true as const });
}

export function isDefinedTask(value: unknown): value is DefinedTask {
  return typeof value === 'object' && value !== null && (value as DefinedTask)[DEFINED_TASK] === true;
}

function definitionProblem(definition: TaskDefinition): string | undefined {
  if (typeof definition !== 'object' || definition === null) return 'expects an object { model, data, loss }';
  // A misspelt field (`epoch`, `batch_size`) would otherwise be dropped, and its default trained.
  const unknown = unknownOption(definition, TASK_DEFINITION_FIELDS);
  if (unknown !== undefined) return unknown;
  if (typeof definition.model !== 'function') return '`model` must be a function returning a tf.LayersModel';
  if (typeof definition.data !== 'function')
    return '`data` must be a function returning { train: { xs, ys } }';
  if (typeof definition.loss !== 'string' && typeof definition.loss !== 'function') {
    return '`loss` must be a tfjs loss name or a function (labels, predictions) => one value per sample';
  }
  if (definition.metrics !== undefined && !Array.isArray(definition.metrics)) {
    return '`metrics` must be an array of names or functions';
  }
  const metrics = definition.metrics ?? [];
  // Each element is checked before the names are read: `cond && fn` leaves a false, null or undefined.
  const notMetric = metrics.findIndex((metric) => typeof metric !== 'string' && typeof metric !== 'function');
  if (notMetric !== -1) {
    return `\`metrics[${notMetric}]\` must be a metric name or a function (labels, predictions) => one value per sample, got ${shownWithType(metrics[notMetric])}`;
  }
  const namesProblem = metricNamesProblem(metrics);
  if (namesProblem !== undefined) return `\`metrics\` ${namesProblem}`;
  if (definition.images !== undefined && typeof definition.images !== 'boolean') {
    return `\`images\` must be true or false, got ${shownWithType(definition.images)}`;
  }
  for (const key of ['epochs', 'batchSize'] as const) {
    const value = definition[key];
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      return `\`${key}\` must be a positive integer, got ${shownWithType(value)}`;
    }
  }
  return undefined;
}
