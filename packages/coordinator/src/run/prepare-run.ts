import {
  evaluationSetOf,
  type Fingerprint,
  fingerprintDigest,
  fingerprintOfTask,
  initBackend,
  loadLatestCheckpoint,
  loadTaskForTraining,
  readFlatWeights,
  requireSameTask,
  runTask,
  type SampleSet,
  type Task,
  type TaskModel,
  TrainingState,
  taskTrainingConfig,
} from '@callosum/core';
import type { CoordinatorOptions } from '../options.js';
import type { RunDirectory } from './run-directory.js';

/** Everything a run starts from: its directory, its config and state (fresh or resumed), task and data. */
export interface PreparedRun {
  readonly checkpointDir: string;
  /** The checkpoint a resumed run continues from. */
  readonly resumedFrom: string | undefined;
  readonly state: TrainingState;
  readonly task: Task;
  readonly taskModel: TaskModel;
  readonly train: SampleSet;
  /** What each epoch is evaluated on: the task's test set, else its validation set, else nothing. */
  readonly evaluationSet: SampleSet | undefined;
  /** A task module's fingerprint, which every worker's must match; undefined for built-in models. */
  readonly fingerprint: Fingerprint | undefined;
}

/**
 * The start of a run, in one place: the run directory (claimed or reopened by RunDirectory), resuming
 * from its newest intact checkpoint (whose config then wins over `options.training`), the task's model
 * and data.
 */
export async function prepareRun(
  runDirectory: RunDirectory,
  options: CoordinatorOptions,
  log: (line: string) => void,
): Promise<PreparedRun> {
  const { checkpointDir } = runDirectory;
  const resumed = options.resume === true ? await loadLatestCheckpoint(checkpointDir, log) : undefined;
  const builtIn = options.task === undefined;
  // A resumed run of a built-in model trains the model its checkpoint names.
  const task = runTask(options.task, resumed?.checkpoint.config.model ?? options.training?.model, options);
  // The coordinator never needs a fast backend: it builds the model and saves it at the end.
  await initBackend('cpu');
  // What every worker's task must match; its digest goes into the run's config, for --resume to check.
  const fingerprint = builtIn ? undefined : fingerprintOfTask(task);
  const digest = fingerprint && fingerprintDigest(fingerprint);
  // taskTrainingConfig checks that a config shifts images only; a resumed config was made by it too.
  const config =
    resumed?.checkpoint.config ?? taskTrainingConfig(task, options.training ?? {}, builtIn, digest);
  requireSameTask(task, config, builtIn, digest);
  // Checks that a resumed checkpoint belongs to this run, and marks a new run's directory as its own.
  await runDirectory.adopt(config, resumed?.path);

  const { taskModel, data } = await loadTaskForTraining(task, config.seed);
  const { model, layout } = taskModel;
  const state =
    resumed === undefined
      ? new TrainingState(config, readFlatWeights(model, layout), data.train.count, layout)
      : TrainingState.restore(resumed.checkpoint, data.train.count, layout);
  return {
    checkpointDir,
    resumedFrom: resumed?.path,
    state,
    task,
    taskModel,
    train: data.train,
    evaluationSet: evaluationSetOf(data),
    fingerprint,
  };
}
