/**
 * A task as the trainer uses it, wherever it comes from (the built-in MNIST models or a user's task
 * module): how to build the model, where the data is, what to minimise, and the run defaults. Every
 * process of a run instantiates the same task into a TaskModel.
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { BatchConversion, SampleSet } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import { type ParameterLayout, parameterLayout } from '../params/layout.js';
import type { TrainingOptions } from '../train/config.js';
import { synchronisableBatchNorm } from '../train/sync-batch-norm.js';
import { seedDropoutLayers } from './dropout.js';
import { needsClasses } from './losses.js';
import { namingTask } from './naming-task.js';
import { type LossSpec, Objective } from './objective.js';
import { shapeText } from './shape-text.js';

export interface TaskData {
  readonly train: SampleSet;
  readonly validation?: SampleSet | undefined;
  readonly test?: SampleSet | undefined;
}

export interface Task {
  /** Names the task in logs, checkpoints and the fingerprint (e.g. "mnist/cnn", or a module's file name). */
  readonly name: string;
  buildModel(seed: number): LayersModel;
  /** Only the coordinator and trainLocal load data; workers receive it in shards. */
  loadData(): Promise<TaskData>;
  readonly loss: LossSpec;
  readonly metrics: readonly LossSpec[];
  /** uint8 features are divided by this into the model's float input (MNIST's pixels: 255). */
  readonly featureDivisor?: number | undefined;
  /** Whether samples are images a run may shift at random (`maxShift`); no other task is augmented. */
  readonly images: boolean;
  /** The task's own run defaults (optimizer, epochs, ...), which a run's options override. */
  readonly defaults: TrainingOptions;
}

/** What a run evaluates after each epoch: the task's test set, else its validation set, else nothing. */
export function evaluationSetOf(data: TaskData): SampleSet | undefined {
  return data.test ?? data.validation;
}

/** A task's model, ready to train: where its weights live in flat vectors, its objective, its batches. */
export interface TaskModel {
  readonly model: LayersModel;
  readonly layout: ParameterLayout;
  readonly objective: Objective;
  readonly conversion: BatchConversion;
}

export function instantiateTask(task: Task, seed: number): TaskModel {
  const model = task.buildModel(seed);
  try {
    return checkedTaskModel(task, model);
  } catch (error) {
    // A model refused here is nobody's: a long-lived process (repeated trainLocal calls) keeps nothing.
    model.dispose();
    throw error;
  }
}

/** The task's model checked for what Callosum trains, with its layout, objective and batch conversion. */
function checkedTaskModel(task: Task, model: LayersModel): TaskModel {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new CallosumError(
      ErrorCodes.TASK_INVALID,
      `task ${task.name}: the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; Callosum trains models with one of each`,
    );
  }
  const outputRank = model.outputs[0]?.shape.length ?? 0;
  if (outputRank > 2) {
    throw new CallosumError(
      ErrorCodes.TASK_INVALID,
      `task ${task.name}: the model's output has shape ${shapeText(model.outputs[0]?.shape ?? [])}; Callosum trains models whose output is one vector per sample ([batch, units])`,
    );
  }
  if (model.trainableWeights.length === 0) {
    throw new CallosumError(
      ErrorCodes.TASK_INVALID,
      `task ${task.name}: the model has no trainable weights (every layer is trainable: false, or has no weights): there is nothing to train`,
    );
  }
  namingTask(task.name, () => seedDropoutLayers(model));
  synchronisableBatchNorm(model);
  const objective = namingTask(task.name, () => new Objective(model, task.loss, task.metrics, task.name));
  const overOneClass = objective.namedFunctions.find(
    ({ name }) => needsClasses(name) && model.outputs[0]?.shape.at(-1) === 1,
  );
  if (overOneClass !== undefined) {
    throw new CallosumError(
      ErrorCodes.TASK_INVALID,
      `task ${task.name}: ${overOneClass.shown} over a model with 1 output is always 0 (a cross-entropy over one class); give the model one output per class, or use binaryCrossentropy for one probability`,
    );
  }
  const inputDtype = model.inputs[0]?.dtype;
  return {
    model,
    layout: parameterLayout(model),
    objective,
    conversion: {
      featureDtype: inputDtype === 'int32' ? 'int32' : 'float32',
      featureDivisor: task.featureDivisor,
      labelDtype: objective.labelDtype,
    },
  };
}

/** The model's input shape per sample (the batch dimension dropped; unknown dimensions as 1). */
export function inputSampleShape(model: LayersModel): number[] {
  const [, ...sampleShape] = model.inputs[0]?.shape ?? [];
  return sampleShape.map((dim) => dim ?? 1);
}
