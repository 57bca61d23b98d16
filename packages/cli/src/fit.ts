/**
 * `fit(task, options)`: Keras's model.fit for a Callosum run. Trains a task module on local worker
 * processes (or on remote workers that connect to it), evaluates the validation data after every
 * epoch, calls the callbacks, and returns a History shaped like tf.LayersModel.fit's with the run
 * summary.
 */
import { resolve } from 'node:path';
import {
  type Coordinator,
  type EvaluationReport,
  type RunSummary,
  type StepReport,
  startCoordinator,
} from '@callosum/coordinator';
import {
  type BackendPreference,
  type BatchNormMode,
  CallosumError,
  ErrorCodes,
  isLoopbackHost,
  loadTaskModule,
  metricNamesOf,
  type SampleSet,
  sampleSet,
  shownWithType,
  sliceSampleSet,
  type Task,
  type TaskSplit,
  type TrainingOverrides,
  unknownOption,
} from '@callosum/core';
import { defaultThreads } from '@callosum/worker';
import { callbackFailure, stoppedByCallback } from './fit-callback-failure.js';
import { requireCallbacks, requireMonitoredFigures } from './fit-callbacks.js';
import { trainWithLocalWorkers } from './local-training.js';

/** Figures of an epoch or a batch by name: loss, acc, val_loss, val_acc, val_<metric>. */
export type Logs = Readonly<Record<string, number>>;

/** What a callback may do to the run it is called from. */
export interface FitRun {
  /** Ends training after this epoch or batch, as if complete: the model and summary are saved. */
  stop(reason?: string): void;
  /** Saves the model with its current weights (e.g. the best so far) into `dir`. */
  saveModel(dir: string): Promise<void>;
}

export interface FitCallback {
  /**
   * The figure of the epoch logs this callback reads (earlyStopping's and saveBestModel's `monitor`):
   * fit refuses, before training, a name the epoch logs will not have (a `monitor` that is not a string
   * is not checked).
   */
  readonly monitor?: string;
  /** After every step; `batch` counts from 0 in each epoch. */
  onBatchEnd?(batch: number, logs: Logs, run: FitRun): void | Promise<void>;
  /** After every epoch, with its validation figures when there is validation data. */
  onEpochEnd?(epoch: number, logs: Logs, run: FitRun): void | Promise<void>;
}

export interface FitOptions
  extends Partial<
    Pick<
      TrainingOverrides,
      'epochs' | 'batchSize' | 'optimizer' | 'learningRate' | 'schedule' | 'seed' | 'microBatchSize'
    >
  > {
  /** The run directory: the final model, metrics and checkpoints. */
  readonly outDir: string;
  /**
   * Whether a run already in `outDir` is moved aside (into `<outDir>/replaced-<time>/`) rather than
   * refused, as `callosum train --overwrite` does; by default a directory holding a run is refused.
   */
  readonly overwrite?: boolean;
  /**
   * Continue the run in `outDir` from its newest checkpoint (one a callback stopped by throwing, say), as
   * `callosum train --resume` does. Give the options it started with: its checkpoint keeps the training
   * options (epochs, batchSize, ...), but not validationSplit or validationData, which decide its data.
   */
  readonly resume?: boolean;
  /** Local worker processes to start (default 2); ignored with `listen`. */
  readonly workers?: number;
  readonly threads?: number;
  readonly backend?: BackendPreference;
  /** GPUs for the local workers, one each (trainWithLocalWorkers' `gpus`; [] assigns none). */
  readonly gpus?: readonly string[];
  /**
   * BatchNormalization across workers (the training config's `batchNorm`): `local` (default), each
   * shard normalised with its own statistics, as DDP; `sync`, with the whole batch's, as one process.
   */
  readonly batchNorm?: BatchNormMode;
  /**
   * Instead of local workers: listen here for `callosum worker --task <the same module>` processes. A
   * token is required beyond loopback (the workers' CALLOSUM_TOKEN), as for `callosum coordinator`.
   */
  readonly listen?: {
    readonly host?: string;
    readonly port?: number;
    readonly token?: string;
    readonly minWorkers?: number;
  };
  /** The last fraction of the training data (before shuffling, as Keras takes it) becomes the validation data. */
  readonly validationSplit?: number;
  /** Validation data given here instead of the task's own validation split. */
  readonly validationData?: TaskSplit;
  readonly callbacks?: readonly FitCallback[];
  readonly log?: (line: string) => void;
}

/** Every option's name: `satisfies` makes the compiler say when an option is added and not listed. */
const FIT_OPTION_NAMES = Object.keys({
  epochs: true,
  batchSize: true,
  optimizer: true,
  learningRate: true,
  schedule: true,
  seed: true,
  microBatchSize: true,
  outDir: true,
  overwrite: true,
  resume: true,
  workers: true,
  threads: true,
  backend: true,
  gpus: true,
  batchNorm: true,
  listen: true,
  validationSplit: true,
  validationData: true,
  callbacks: true,
  log: true,
} satisfies Record<keyof FitOptions, true>);

/** The options of `listen`: `satisfies` keeps them equal to the type's. */
const LISTEN_OPTION_NAMES = Object.keys({
  host: true,
  port: true,
  token: true,
  minWorkers: true,
} satisfies Record<keyof NonNullable<FitOptions['listen']>, true>);

/**
 * Refuses a `listen` that is no object or has an option it does not have (a misspelt `prot` would listen
 * on a free port), and a host beyond loopback without a token in fit's own words: fit takes the token as
 * `listen.token` only (not from CALLOSUM_TOKEN or --token-file, as `callosum coordinator` does), and has
 * no --insecure; the coordinator's own refusal would name those.
 */
function requireListen(listen: unknown): void {
  if (listen === undefined) return;
  if (typeof listen !== 'object' || listen === null || Array.isArray(listen)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `fit: listen must be an object ({ host, port, token, minWorkers }), got ${shownWithType(listen)}`,
    );
  }
  const unknown = unknownOption(listen, LISTEN_OPTION_NAMES);
  if (unknown !== undefined) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `fit listen ${unknown}`);
  const { host, token } = listen as { host?: unknown; token?: unknown };
  if (typeof host === 'string' && token === undefined && !isLoopbackHost(host)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `fit: refusing to listen on ${host} without a token: give listen.token, the secret the workers are ` +
        'given as CALLOSUM_TOKEN (fit does not read CALLOSUM_TOKEN itself), or listen on loopback (the default host, 127.0.0.1)',
    );
  }
}

/** Keras's and other libraries' names for these options (keyed in lower case). */
const OTHER_SPELLINGS: Readonly<Record<string, string>> = {
  validation_split: 'validationSplit',
  validation_data: 'validationData',
  batch_size: 'batchSize',
  lr: 'learningRate',
  learning_rate: 'learningRate',
};

/** As tf.LayersModel.fit returns it: the epochs run, and each figure's value per epoch. */
export interface History {
  readonly epoch: number[];
  readonly history: Record<string, number[]>;
}

export interface FitResult {
  readonly history: History;
  readonly summary: RunSummary;
}

/**
 * Trains the task module at `taskModule` (a path; every worker process loads the same module). The
 * epoch's `loss`, `acc` and metrics are the means over its steps' batches that this call trained (after a
 * resume in the middle of an epoch, those since the resume; NaN for an epoch trained wholly before it);
 * `val_*` are measured on the validation data with the weights at the epoch's end. A callback that throws
 * stops the run as a signal stops `callosum train`: its step is checkpointed, and fit rejects naming the
 * callback and how to resume.
 */
export async function fit(taskModule: string, options: FitOptions): Promise<FitResult> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `fit needs its options, an object with at least outDir (the run directory), got ${shownWithType(options)}`,
    );
  }
  // Keras's `validation_split` or a misspelt `epoch` would otherwise train the task's defaults.
  const unknown = unknownOption(options, FIT_OPTION_NAMES, OTHER_SPELLINGS);
  if (unknown !== undefined) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `fit ${unknown}`);
  if (typeof options.outDir !== 'string' || options.outDir === '') {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `fit: outDir (the run directory) is required: a non-empty path, got ${shownWithType(options.outDir)}`,
    );
  }
  requireCallbacks(options.callbacks);
  requireListen(options.listen);
  if (options.resume === true && options.overwrite === true) {
    throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'give resume or overwrite, not both');
  }
  const path = resolve(taskModule);
  const loaded = await loadTaskModule(path);
  // Once the data is loaded (whether there are val_ figures depends on it), before the first step.
  const task = withValidation(loaded, options, (validates) =>
    requireMonitoredFigures(options.callbacks ?? [], epochLogNames(loaded, validates)),
  );
  const history: History = { epoch: [], history: {} };
  // Sample-weighted sums over the epoch's steps, by log name (loss, acc, mae, ...).
  let epochSums: Record<string, number> = {};
  let epochSamples = 0;
  let coordinator: Coordinator | undefined;
  let stopReason: string | undefined;
  const run: FitRun = {
    stop: (reason = 'stopped by a callback') => {
      stopReason ??= reason;
    },
    saveModel: async (dir) => {
      if (coordinator === undefined) throw new CallosumError(ErrorCodes.INTERNAL, 'no run to save yet');
      await coordinator.saveModel(dir);
    },
  };
  const afterCallbacks = () => {
    if (stopReason !== undefined) coordinator?.finish(stopReason);
  };
  // The first callback to throw stops the run; the abort ends the local workers, which would otherwise
  // wait for a resumed coordinator.
  const stopping = new AbortController();
  let failure: CallosumError | undefined;
  // `call` names the call in the error, as `onEpochEnd(1, …)`.
  const callEach = async (call: string, invoke: (callback: FitCallback) => void | Promise<void>) => {
    for (const [index, callback] of (options.callbacks ?? []).entries()) {
      try {
        await invoke(callback);
      } catch (thrown) {
        failure = callbackFailure(`callbacks[${index}].${call}`, thrown);
        stopping.abort(failure.message);
        throw failure;
      }
    }
  };
  const endEpoch = async (epoch: number, evaluation?: EvaluationReport) => {
    // An epoch whose steps all ran before a resume (its evaluation was owed): its training figures are
    // not known here, and are NaN, so that every history list keeps one entry per epoch.
    const logs: Record<string, number> =
      epochSamples === 0
        ? Object.fromEntries(epochLogNames(loaded, false).map((name) => [name, Number.NaN]))
        : Object.fromEntries(Object.entries(epochSums).map(([name, sum]) => [name, sum / epochSamples]));
    if (evaluation !== undefined) {
      logs.val_loss = evaluation.testLoss;
      for (const [name, value] of Object.entries(evaluation.testMetrics)) {
        logs[`val_${name === 'accuracy' ? 'acc' : name}`] = value;
      }
    }
    epochSums = {};
    epochSamples = 0;
    history.epoch.push(epoch);
    for (const [name, value] of Object.entries(logs)) {
      history.history[name] = [...(history.history[name] ?? []), value];
    }
    await callEach(`onEpochEnd(${epoch}, …)`, (callback) => callback.onEpochEnd?.(epoch, logs, run));
    afterCallbacks();
  };
  const onStep = async (report: StepReport) => {
    const samples = report.perWorker.reduce((sum, worker) => sum + worker.samples, 0);
    const logs = batchLogs(report);
    for (const [name, value] of Object.entries(logs))
      epochSums[name] = (epochSums[name] ?? 0) + value * samples;
    epochSamples += samples;
    // `batch` counts from 0 in each epoch (after a resume too): the epoch says which batch it was.
    await callEach(`onBatchEnd(${report.batch}, …) of epoch ${report.epoch}`, (callback) =>
      callback.onBatchEnd?.(report.batch, logs, run),
    );
    // With validation data the epoch ends after its evaluation (onEvaluation).
    if (report.endsEpoch && !task.validates()) await endEpoch(report.epoch);
    else afterCallbacks();
  };
  const onEvaluation = (report: EvaluationReport) => endEpoch(report.epoch, report);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const training = trainingOptions(options);
  const ignored = Object.keys(training);
  if (options.resume === true && ignored.length > 0) {
    log(
      `fit: warning: resume continues the run with the options it started with; ignoring ${ignored.join(', ')}`,
    );
  }
  const running =
    options.listen === undefined
      ? trainWithLocalWorkers({
          workers: options.workers ?? 2,
          threads: options.threads ?? defaultThreads(options.workers ?? 2),
          backend: options.backend ?? 'auto',
          ...(options.gpus === undefined ? {} : { gpus: options.gpus }),
          task: task.task,
          taskModule: path,
          training,
          outDir: options.outDir,
          overwrite: options.overwrite === true,
          resume: options.resume === true,
          log,
          onStep,
          onEvaluation,
          signal: stopping.signal,
          onStarted: (started) => {
            coordinator = started;
          },
        })
      : listenForWorkers(task.task, training, options, { log, onStep, onEvaluation }, (started) => {
          coordinator = started;
        });
  const summary = await running.catch(async (error: unknown) => {
    if (failure === undefined || error !== failure) throw error;
    throw await stoppedByCallback(failure, options.outDir);
  });
  return { history, summary };
}

/** The names of every epoch's logs: the training figures (as batchLogs), then each as val_ with validation data. */
function epochLogNames(task: Task, validates: boolean): string[] {
  const { measuresAccuracy, metricNames } = metricNamesOf(task.metrics);
  const training = ['loss', ...(measuresAccuracy ? ['acc'] : []), ...metricNames];
  return validates ? [...training, ...training.map((name) => `val_${name}`)] : training;
}

/** A step's figures as Keras names them: loss, acc (when measured), then each metric. */
function batchLogs(report: StepReport): Logs {
  return {
    loss: report.loss,
    ...(Number.isNaN(report.accuracy) ? {} : { acc: report.accuracy }),
    ...report.metrics,
  };
}

async function listenForWorkers(
  task: Task,
  training: TrainingOverrides,
  options: FitOptions,
  callbacks: {
    log: (line: string) => void;
    onStep: (report: StepReport) => Promise<void>;
    onEvaluation: (report: EvaluationReport) => Promise<void>;
  },
  started: (coordinator: Coordinator) => void,
): Promise<RunSummary> {
  const listen = options.listen ?? {};
  const coordinator = await startCoordinator({
    task,
    training,
    outDir: options.outDir,
    overwrite: options.overwrite === true,
    resume: options.resume === true,
    host: listen.host ?? '127.0.0.1',
    port: listen.port ?? 0,
    ...(listen.token === undefined ? {} : { token: listen.token }),
    minWorkers: listen.minWorkers ?? 1,
    ...callbacks,
  });
  started(coordinator);
  return coordinator.result;
}

function trainingOptions(options: FitOptions): TrainingOverrides {
  const keys = [
    'epochs',
    'batchSize',
    'optimizer',
    'learningRate',
    'schedule',
    'seed',
    'microBatchSize',
    'batchNorm',
  ] as const;
  return Object.fromEntries(
    keys.filter((key) => options[key] !== undefined).map((key) => [key, options[key]]),
  );
}

/**
 * The task with fit's validation data in place of its own, and nothing else evaluated; `validates`
 * tells, once the data is loaded, whether there is validation data, as `onDataLoaded` is told then.
 */
function withValidation(
  task: Task,
  options: FitOptions,
  onDataLoaded: (validates: boolean) => void,
): { task: Task; validates: () => boolean } {
  const { validationSplit, validationData } = options;
  if (
    validationSplit !== undefined &&
    !(typeof validationSplit === 'number' && validationSplit > 0 && validationSplit < 1)
  ) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `validationSplit must be a number in (0, 1), got ${shownWithType(validationSplit)}`,
    );
  }
  if (validationSplit !== undefined && validationData !== undefined) {
    throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, 'give validationSplit or validationData, not both');
  }
  const fail = (problem: string) =>
    new CallosumError(ErrorCodes.TASK_INVALID, `fit validationData: ${problem}`);
  let validates = false;
  const wrapped: Task = {
    ...task,
    loadData: async () => {
      const data = await task.loadData();
      let train: SampleSet = data.train;
      let validation = data.validation;
      if (validationSplit !== undefined) {
        const at = Math.floor(train.count * (1 - validationSplit));
        if (at < 1 || at >= train.count) {
          throw new CallosumError(
            ErrorCodes.INVALID_ARGUMENT,
            `validationSplit ${validationSplit} of ${train.count} samples leaves no training or no validation samples`,
          );
        }
        validation = sliceSampleSet(train, at, train.count);
        train = sliceSampleSet(train, 0, at);
      } else if (validationData !== undefined) {
        validation = sampleSet(validationData, 'validation', fail);
      }
      // Without either option, the task's own validation split (if any) is what each epoch measures.
      validates = validation !== undefined;
      onDataLoaded(validates);
      return { train, validation };
    },
  };
  return { task: wrapped, validates: () => validates };
}
