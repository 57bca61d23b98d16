import type { DatasetSource } from '../data/mnist.js';
import type { SampleSet } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import type { ModelSpec } from '../models/spec.js';
import { resolveTrainingConfig, type TrainingConfig, type TrainingOptions } from '../train/config.js';
import { probeTask } from '../train/task-probe.js';
import { isDefinedTask } from './define-task.js';
import { mnistTask } from './mnist-task.js';
import { instantiateTask, type Task, type TaskData, type TaskModel } from './task.js';
import { checkTaskData } from './task-data.js';

/** The task a run trains: the one given, else the built-in `model` (default cnn) on MNIST. */
export function runTask(
  task: Task | undefined,
  model: ModelSpec | undefined,
  source: DatasetSource = {},
): Task {
  if (task !== undefined) requireTask(task);
  return task ?? mnistTask(model ?? { name: 'cnn' }, source);
}

/**
 * A JavaScript caller may hand over what defineTask returned, or the module's path: both are one call
 * away from a Task, which the message names.
 */
function requireTask(task: unknown): asserts task is Task {
  const candidate = task as Partial<Task> | null;
  if (typeof candidate?.buildModel === 'function' && typeof candidate.loadData === 'function') return;
  const given = isDefinedTask(task)
    ? "defineTask's result"
    : typeof task === 'string'
      ? `the path "${task}"`
      : typeof task === 'object' && task !== null
        ? `an object (${task.constructor?.name ?? 'no class'})`
        : typeof task;
  throw new CallosumError(
    ErrorCodes.INVALID_ARGUMENT,
    `task must be a Task: await loadTaskModule(path) for a task module, or taskFromDefinition(defineTask({ … }), name); got ${given}`,
  );
}

/**
 * A run's config: the task's defaults, overridden by every option that is set. A task module's run
 * records as its model the task's name and its fingerprint's digest, so that a checkpoint names what it
 * trained and --resume can refuse a changed task.
 */
export function taskTrainingConfig(
  task: Task,
  options: TrainingOptions,
  builtIn: boolean,
  digest?: string,
): TrainingConfig {
  const set = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const config = resolveTrainingConfig({
    ...task.defaults,
    ...set,
    ...(builtIn ? {} : { model: taskModelSpec(task, digest) }),
  });
  requireAugmentable(task, config);
  return config;
}

/** How a task module's run records its task: by name, and by fingerprint digest where it has one. */
function taskModelSpec(task: Task, digest: string | undefined): ModelSpec {
  return { name: `task:${task.name}`, ...(digest === undefined ? {} : { options: { fingerprint: digest } }) };
}

/**
 * A resumed run continues the task it started with: the checkpoint's config names it, and its
 * fingerprint digest (`digest`: this module's) must be the same.
 */
export function requireSameTask(task: Task, config: TrainingConfig, builtIn: boolean, digest?: string): void {
  requireTrainedTask(config.model.name, builtIn ? undefined : task.name);
  const recordedDigest = config.model.options?.fingerprint;
  if (!builtIn && recordedDigest !== undefined && recordedDigest !== digest) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `task ${task.name} has changed since this run started (its model, loss or metrics fingerprint differs): resume it with the module it started with`,
    );
  }
}

/**
 * A resume names the task its run trains: `recorded` is the model the run's config names (`task:<name>`,
 * or a built-in model's name), `taskName` the name of the task module given, undefined for none.
 */
export function requireTrainedTask(recorded: string, taskName: string | undefined): void {
  const trainedTask = recorded.startsWith('task:') ? recorded.slice('task:'.length) : undefined;
  if (taskName === undefined && trainedTask !== undefined) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `this run trains task ${trainedTask}: resume it with --task and that task's module`,
    );
  }
  if (taskName !== undefined && trainedTask !== taskName) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `this run trains ${trainedTask === undefined ? `the built-in model ${recorded}` : `task ${trainedTask}`}, not task ${taskName}`,
    );
  }
}

/** Random shifts are for images: anywhere else they would scramble features. */
export function requireAugmentable(task: Task, config: TrainingConfig): void {
  if (config.maxShift > 0 && !task.images) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `maxShift (--max-shift) shifts images; task ${task.name} is not an image task, so it must be 0`,
    );
  }
}

/**
 * A shift must leave some of an image: refused at the start, naming the images' size, instead of by
 * every worker's first step.
 */
export function requireShiftFits(task: Task, train: SampleSet, maxShift: number): void {
  if (maxShift === 0 || !task.images) return;
  const [rows = 0, cols = 0] = train.features.sampleShape;
  if (maxShift >= Math.min(rows, cols)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `maxShift (--max-shift) ${maxShift} does not fit task ${task.name}'s images of ${rows}×${cols}: it must be less than ${Math.min(rows, cols)}`,
    );
  }
}

/**
 * The task's model for `seed` and its data, checked against each other and probed (task-probe.ts); a
 * model refused here is disposed of.
 */
export async function loadTaskForTraining(
  task: Task,
  seed: number,
): Promise<{ taskModel: TaskModel; data: TaskData }> {
  const taskModel = instantiateTask(task, seed);
  try {
    const data = await task.loadData();
    checkTaskData(task, data, taskModel);
    probeTask(task, data, taskModel);
    return { taskModel, data };
  } catch (error) {
    taskModel.model.dispose();
    throw error;
  }
}

/** Everything trainLocal starts from: the task, its config, model and data. */
export async function prepareTask(
  task: Task | undefined,
  options: TrainingOptions,
  source: DatasetSource,
): Promise<{ task: Task; config: TrainingConfig; taskModel: TaskModel; data: TaskData }> {
  const chosen = runTask(task, options.model as ModelSpec | undefined, source);
  const config = taskTrainingConfig(chosen, options, task === undefined);
  const loaded = await loadTaskForTraining(chosen, config.seed);
  requireShiftFits(chosen, loaded.data.train, config.maxShift);
  return { task: chosen, config, ...loaded };
}
