import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { BackendPreference } from '../backends/registry.js';
import { type BackendChoice, initBackend } from '../backends/select.js';
import type { DatasetSource } from '../data/mnist.js';
import { batchBuffers, type SampleBatch, toSampleBatch } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import { describeFileError } from '../io/file-errors.js';
import { saveModel } from '../io/model-files.js';
import { requireBoolean, unknownOption } from '../optim/validation.js';
import { shownWithType } from '../options/schema.js';
import { readFlatWeights, writeFlatWeights } from '../params/layout.js';
import { prepareTask } from '../task/prepare-task.js';
import { evaluationSetOf, type Task, type TaskModel } from '../task/task.js';
import { TRAINING_OPTION_NAMES, type TrainingConfig, type TrainingOverrides } from './config.js';
import { trainingDiverged } from './divergence.js';
import { addTotals, EMPTY_TOTALS, type Evaluation, evaluateSampleSet, evaluationOf } from './evaluate.js';
import { type EpochEvent, type StepEvent, stepEvent } from './events.js';
import { nonFiniteValue, type ReducedStep } from './reduce.js';
import { reductionFor } from './reduction.js';
import { TrainingState } from './training-state.js';

export interface TrainLocalOptions extends TrainingOverrides, DatasetSource {
  /** What to train: a task (e.g. loadTaskModule's); without one, `model` on MNIST. */
  readonly task?: Task | undefined;
  readonly backend?: BackendPreference;
  /** Evaluate on the whole test set (else validation set) after every epoch (default true). */
  readonly evaluate?: boolean;
  /** Save the final model here in the TF.js layers format. */
  readonly outDir?: string;
  /** A promise it returns is awaited (an async callback that rejects fails the run; the next waits). */
  readonly onStep?: (event: StepEvent) => unknown;
  /** After every epoch: its training figures, and its evaluation's when there is one. */
  readonly onEpoch?: (event: EpochEvent) => unknown;
}

/** Every option's name: `satisfies` makes the compiler say when an option is added and not listed. */
const TRAIN_LOCAL_OPTION_NAMES: readonly string[] = [
  ...TRAINING_OPTION_NAMES,
  ...Object.keys({
    task: true,
    backend: true,
    evaluate: true,
    outDir: true,
    onStep: true,
    onEpoch: true,
    dataDir: true,
    dataset: true,
  } satisfies Record<Exclude<keyof TrainLocalOptions, keyof TrainingConfig>, true>),
];

/** Names other libraries and the CLI give these options (keyed in lower case). */
const OTHER_SPELLINGS: Readonly<Record<string, string>> = {
  steps: 'maxSteps',
  lr: 'learningRate',
  learning_rate: 'learningRate',
};

export interface TrainLocalResult {
  readonly model: LayersModel;
  readonly weights: Float32Array;
  readonly backend: BackendChoice;
  readonly steps: number;
  readonly epochs: number;
  /**
   * Figures on the test set (else the validation set) after the last epoch; NaN when evaluation was off
   * or the task has neither.
   */
  readonly testLoss: number;
  /** NaN also when the task does not measure accuracy. */
  readonly testAccuracy: number;
  /** Every metric of the task on the test set, by name (empty when evaluation was off). */
  readonly testMetrics: Readonly<Record<string, number>>;
  readonly samplesPerSecond: number;
}

/**
 * Trains in this one process, from the same pieces the distributed trainer uses (sampler, flat
 * gradients, shard reduction, flat optimizer): with the same config it computes the same steps as a
 * coordinator with one worker.
 */
export async function trainLocal(options: TrainLocalOptions = {}): Promise<TrainLocalResult> {
  checkTrainLocalOptions(options);
  const release = claimTheProcess();
  try {
    return await train(options);
  } finally {
    release();
  }
}

/**
 * Set on `globalThis` (as tfjs keeps its engine there, shared by every copy of it loaded) while a
 * trainLocal runs: two at once would share tfjs's one backend, each switching it under the other.
 */
const RUNNING = Symbol.for('@callosum/core trainLocal running');

/** Marks the process as running a trainLocal, refusing a second at once; returns what ends the claim. */
function claimTheProcess(): () => void {
  const holder = globalThis as { [RUNNING]?: boolean };
  if (holder[RUNNING] === true) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      'trainLocal is already running in this process: one trainLocal runs at a time per process, because tfjs has one backend per process (a second run would switch it under the first). Await the first run before starting another (not from its onStep or onEpoch), or run the other in another process',
    );
  }
  holder[RUNNING] = true;
  return () => {
    holder[RUNNING] = false;
  };
}

/** The options a task builds and loads itself: given with `task`, they would be ignored. */
const BUILT_IN_ONLY = ['model', 'dataDir', 'dataset'] as const;

/**
 * Everything about the options that can be refused before training: a value of the wrong kind would
 * otherwise fail as a bare TypeError, or only after every step (a callback), or be ignored.
 */
function checkTrainLocalOptions(options: TrainLocalOptions): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `trainLocal: options must be an object ({ task, epochs, ... }), got ${shownWithType(options)}`,
    );
  }
  // A misspelt option (`steps` for maxSteps) would otherwise be dropped, and its default trained.
  const unknown = unknownOption(options, TRAIN_LOCAL_OPTION_NAMES, OTHER_SPELLINGS);
  if (unknown !== undefined) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `trainLocal ${unknown}`);
  if (options.task !== undefined) {
    const given = BUILT_IN_ONLY.filter((name) => options[name] !== undefined);
    if (given.length > 0) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `trainLocal: ${given.join(', ')} ${given.length === 1 ? 'is' : 'are'} for the built-in MNIST models; with task the task builds its model and loads its data, so leave ${given.length === 1 ? 'it' : 'them'} out`,
      );
    }
  }
  for (const name of ['onStep', 'onEpoch'] as const) {
    const callback: unknown = options[name];
    if (callback !== undefined && typeof callback !== 'function') {
      throw invalidOption(name, 'a function', callback);
    }
  }
  if (options.evaluate !== undefined) requireBoolean('trainLocal', 'evaluate', options.evaluate);
  for (const name of ['outDir', 'dataDir'] as const) {
    const path: unknown = options[name];
    if (path !== undefined && typeof path !== 'string') {
      throw invalidOption(name, 'a string (a directory)', path);
    }
  }
  if (options.dataset !== undefined) checkDataset(options.dataset);
}

function invalidOption(option: string, expected: string, value: unknown): CallosumError {
  return new CallosumError(
    ErrorCodes.INVALID_ARGUMENT,
    `trainLocal: ${option} must be ${expected}, got ${shownWithType(value)}`,
  );
}

/** An MnistDataset as loadMnist returns it: `train` and `test`, each an ImageSet. */
function checkDataset(dataset: unknown): void {
  if (typeof dataset !== 'object' || dataset === null || Array.isArray(dataset)) {
    throw invalidOption('dataset', 'an MNIST dataset ({ train, test }, as loadMnist returns)', dataset);
  }
  for (const split of ['train', 'test'] as const) {
    const set = (dataset as Record<string, unknown>)[split];
    const option = `dataset.${split}`;
    if (typeof set !== 'object' || set === null || Array.isArray(set)) {
      throw invalidOption(option, 'an image set ({ count, rows, cols, images, labels })', set);
    }
    const fields = set as Record<string, unknown>;
    for (const field of ['count', 'rows', 'cols'] as const) {
      const value = fields[field];
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
        throw invalidOption(`${option}.${field}`, 'an integer >= 1', value);
      }
    }
    for (const field of ['images', 'labels'] as const) {
      if (!(fields[field] instanceof Uint8Array)) {
        throw invalidOption(`${option}.${field}`, 'a Uint8Array', fields[field]);
      }
    }
  }
}

/**
 * Creates `outDir` as saving the model will, and checks that it can be written, so that a directory
 * that cannot hold the model is refused before training rather than after it, losing the model.
 */
async function prepareOutDir(outDir: string): Promise<void> {
  try {
    await mkdir(outDir, { recursive: true });
    await access(outDir, constants.W_OK);
  } catch (error) {
    const code = (error as { code?: string }).code;
    const file = await stat(outDir).then(
      (stats) => !stats.isDirectory(),
      () => false,
    );
    if (file || code === 'EEXIST' || code === 'ENOTDIR') {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `trainLocal: outDir "${outDir}" must be a directory to save the model in, but ${file ? 'it is a file' : 'part of its path is a file'}`,
        { cause: error },
      );
    }
    const reason = describeFileError(error, outDir) ?? (error as Error).message;
    throw new CallosumError(
      ErrorCodes.WRITE_FAILED,
      `trainLocal: outDir "${outDir}" cannot be written, to save the model in: ${reason}`,
      { cause: error },
    );
  }
}

async function train(options: TrainLocalOptions): Promise<TrainLocalResult> {
  const backend = await initBackend(options.backend ?? 'auto');
  const { task, config, taskModel, data } = await prepareTask(options.task, options, options);
  const { model, layout } = taskModel;
  if (options.outDir !== undefined) {
    await prepareOutDir(options.outDir).catch((error: unknown) => {
      model.dispose();
      throw error;
    });
  }
  const state = new TrainingState(config, readFlatWeights(model, layout), data.train.count, layout);

  let test: Evaluation | undefined;
  let trainedSamples = 0;
  let epochTotals = EMPTY_TOTALS;
  const reduceStep = localStepReducer(config, taskModel, (found) =>
    trainingDiverged({ step: state.step, learningRate: state.learningRate, found, task: task.name }),
  );
  const evaluationSet = evaluationSetOf(data);
  // Every step's batch is written into these (the input tensor copies it out before the next).
  const buffers = batchBuffers(data.train, config.batchSize, taskModel.conversion);
  const started = performance.now();
  while (!state.finished) {
    const { epoch } = state.position;
    const samples = state.gatherTrainingSamples(data.train, state.batchIndices());
    const reduced = reduceStep(toSampleBatch(samples, taskModel.conversion, buffers));
    const learningRate = state.applyStep(reduced);
    writeFlatWeights(model, state.weights, layout);
    trainedSamples += reduced.count;
    epochTotals = addTotals(epochTotals, reduced);
    const samplesPerSecond = trainedSamples / ((performance.now() - started) / 1000);
    await options.onStep?.(
      stepEvent(state, epoch, reduced, learningRate, samplesPerSecond, taskModel.objective),
    );
    if (state.endedEpoch(epoch)) {
      const evaluated = options.evaluate !== false && evaluationSet !== undefined;
      const epochTest = evaluated
        ? evaluationOf(evaluateSampleSet(taskModel, evaluationSet), taskModel)
        : undefined;
      test = epochTest ?? test;
      const training = evaluationOf(epochTotals, taskModel);
      epochTotals = EMPTY_TOTALS;
      await options.onEpoch?.({
        epoch,
        loss: training.loss,
        accuracy: training.accuracy ?? Number.NaN,
        metrics: training.metrics,
        testLoss: epochTest?.loss ?? Number.NaN,
        testAccuracy: epochTest?.accuracy ?? Number.NaN,
        testMetrics: epochTest?.metrics ?? {},
      });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  if (options.outDir !== undefined) await saveModel(model, options.outDir);
  return {
    model,
    weights: state.weights,
    backend,
    steps: state.step,
    epochs: state.step / state.sampler.batchesPerEpoch,
    testLoss: test?.loss ?? Number.NaN,
    testAccuracy: test?.accuracy ?? Number.NaN,
    testMetrics: test?.metrics ?? {},
    samplesPerSecond: trainedSamples / seconds,
  };
}

/**
 * One process's gradient for a whole global batch, reduced the way a coordinator reduces its shards. A
 * NaN or Infinity in it is never applied: `diverged` makes the error to throw, from what was found.
 */
function localStepReducer(
  config: TrainingConfig,
  taskModel: TaskModel,
  diverged: (found: string) => Error,
): (batch: SampleBatch) => ReducedStep {
  const { totalSize } = taskModel.layout;
  const reduction = reductionFor(config, totalSize);
  // The shard's gradient, reused every step: the reduction has read it by the time finish returns.
  const gradient = new Float32Array(totalSize);
  return (batch) => {
    // One worker slot: the whole batch is the step's only shard (the tree's root, or one even shard).
    reduction.begin(reduction.plan(batch.count, 1));
    const result = reduction.computeShard(taskModel, batch, gradient);
    const found = nonFiniteValue(result);
    if (found !== undefined) throw diverged(found);
    reduction.add(0, result);
    return reduction.finish();
  };
}
