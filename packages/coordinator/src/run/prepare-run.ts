import {
  CallosumError,
  checkSynchronisable,
  ErrorCodes,
  evaluationSetOf,
  type Fingerprint,
  fingerprintDigest,
  fingerprintOfTask,
  initBackend,
  loadLatestCheckpoint,
  loadTaskForTraining,
  probeBatch,
  type Reduction,
  readFlatWeights,
  reductionFor,
  requireSameTask,
  requireShiftFits,
  runTask,
  type SampleSet,
  sampleSetDigest,
  type Task,
  type TaskModel,
  type TrainingConfig,
  TrainingState,
  taskTrainingConfig,
} from '@callosum/core';
import type { CoordinatorOptions } from '../options.js';
import { type CoordinatorSettings, changedStoredSettings, storedRunSettingsOf } from '../settings.js';
import { BatchNormSync } from './batch-norm-sync.js';
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
  /** How the run adds its shards up. */
  readonly reduction: Reduction;
  /** The passes of a run that synchronises BatchNormalization; undefined when it does not. */
  readonly batchNorm: BatchNormSync | undefined;
}

/**
 * The start of a run, in one place: the run directory (claimed or reopened by RunDirectory), resuming
 * from its newest intact checkpoint (whose config then wins over `options.training`), the task's model
 * and data.
 */
export async function prepareRun(
  runDirectory: RunDirectory,
  options: CoordinatorOptions,
  settings: CoordinatorSettings,
  log: (line: string) => void,
): Promise<PreparedRun> {
  const { checkpointDir } = runDirectory;
  // The newest checkpoint this run can continue from: one that is damaged, or not this run's (its config
  // is not the one the run's marker records), is skipped with a warning and an older one tried. Those
  // skipped are set aside (<name>.unusable), so that they do not count among the checkpoints kept.
  const resumed =
    options.resume === true
      ? await loadLatestCheckpoint(
          checkpointDir,
          log,
          (checkpoint) => runDirectory.checkCheckpoint(checkpoint),
          { setAside: true },
        )
      : undefined;
  // A run whose marker is gone: refused where its checkpoints show it had one, else said.
  if (resumed !== undefined) {
    runDirectory.requireMarker(resumed.checkpoint, options, storedRunSettingsOf(settings), log);
  }
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
  const changed = changedStoredSettings(options, runDirectory.storedSettings);
  if (changed.length > 0) {
    log(`coordinator: the run continues with other settings than it stored: ${changed.join(', ')}`);
  }
  // Checks that a resumed checkpoint belongs to this run, and marks a new run's directory as its own. A
  // resumed run stores other settings only once its task has loaded and passed its checks: a start
  // that fails (or is given up) leaves the run's settings as they were.
  const settingsToStore = storedRunSettingsOf(settings);
  await runDirectory.adopt(
    config,
    resumed?.path,
    resumed === undefined ? settingsToStore : runDirectory.storedSettings,
  );

  const { taskModel, data } = await loadingTask(task, config.seed, options.signal, log);
  const { model, layout } = taskModel;
  // The caller disposes the model once it has the run; a run refused here must not keep it.
  try {
    requireShiftFits(task, data.train, config.maxShift);
    if (resumed !== undefined) await runDirectory.adopt(config, resumed.path, settingsToStore);
    const state =
      resumed === undefined
        ? new TrainingState(config, readFlatWeights(model, layout), data.train.count, layout)
        : TrainingState.restore(resumed.checkpoint, data.train.count, layout);
    const reduction = reductionFor(config, layout.totalSize);
    const batchNorm = batchNormSyncOf(config.batchNorm, reduction, taskModel, data.train, log);
    // Recorded once the run passed every check, as its settings are.
    const otherData = await runDirectory.recordTrainingData(data.train.count, sampleSetDigest(data.train));
    if (otherData !== undefined) log(`coordinator: warning: ${otherData}`);
    return {
      checkpointDir,
      resumedFrom: resumed?.path,
      state,
      task,
      taskModel,
      train: data.train,
      evaluationSet: evaluationSetOf(data),
      fingerprint,
      reduction,
      batchNorm,
    };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** How often a start waiting for a task's data says it still is. */
const STILL_LOADING_EVERY_MS = 15_000;

/**
 * The task's model and data, which may take long (a download) or never come (a promise that never
 * settles): said while it lasts, and given up when `signal` fires, rejecting with COORDINATOR_STOPPING.
 * The interval also keeps this process alive, where a promise nothing else waits on would let it exit.
 */
async function loadingTask(
  task: Task,
  seed: number,
  signal: AbortSignal | undefined,
  log: (line: string) => void,
): Promise<Awaited<ReturnType<typeof loadTaskForTraining>>> {
  const startedAt = performance.now();
  // The probe (core's task-probe.ts) is a training step on the coordinator's cpu backend: seconds for a
  // large model, said here so that a quiet start is not taken for a hang.
  log(`coordinator: loading task ${task.name} (its model and data, checked on 2 samples)`);
  const still = setInterval(() => {
    const seconds = Math.round((performance.now() - startedAt) / 1000);
    log(`coordinator: still loading task ${task.name}'s data (${seconds} s)`);
  }, STILL_LOADING_EVERY_MS);
  const loading = loadTaskForTraining(task, seed);
  let stopWaiting = () => {};
  const stopped = new Promise<never>((_, reject) => {
    const onAbort = () =>
      reject(new CallosumError(ErrorCodes.COORDINATOR_STOPPING, String(signal?.reason ?? 'aborted')));
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    stopWaiting = () => signal?.removeEventListener('abort', onAbort);
  });
  try {
    return await Promise.race([loading, stopped]);
  } catch (error) {
    // Given up: a model that comes later is nobody's.
    loading.then(({ taskModel }) => taskModel.model.dispose()).catch(() => {});
    throw error;
  } finally {
    clearInterval(still);
    stopWaiting();
  }
}

/**
 * The run's synchronised BatchNormalization, from its config. A model it cannot train is refused here
 * (TASK_INVALID, naming the layer), after a training pass over two samples, before any worker waits
 * for work.
 */
function batchNormSyncOf(
  mode: TrainingConfig['batchNorm'],
  reduction: Reduction,
  taskModel: TaskModel,
  train: SampleSet,
  log: (line: string) => void,
): BatchNormSync | undefined {
  if (mode !== 'sync') return undefined;
  // With micro-batches each micro-batch is normalised, as trainLocal with micro-batches does: nothing to synchronise.
  const batchNorm = reduction.identicalAtAnyWorkerCount ? undefined : BatchNormSync.of(taskModel.model);
  if (batchNorm === undefined) {
    log(
      'coordinator: synchronised BatchNormalization (--batch-norm sync) does nothing in this run: ' +
        (reduction.identicalAtAnyWorkerCount
          ? 'with micro-batches each micro-batch is normalised on its own'
          : 'the model has no BatchNormalization layer'),
    );
    return undefined;
  }
  checkSynchronisable(taskModel, probeBatch(train, taskModel));
  return batchNorm;
}
