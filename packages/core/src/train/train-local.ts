import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { BackendPreference } from '../backends/registry.js';
import { type BackendChoice, initBackend } from '../backends/select.js';
import { batchFromBytes, type ImageBatch } from '../data/batch.js';
import { type DatasetSource, datasetFrom } from '../data/mnist.js';
import { saveModel } from '../io/model-files.js';
import { buildModel } from '../models/index.js';
import {
  type ParameterLayout,
  parameterLayout,
  readFlatWeights,
  writeFlatWeights,
} from '../params/layout.js';
import { resolveTrainingConfig, type TrainingConfig } from './config.js';
import { evaluateImageSet } from './evaluate.js';
import { type EpochEvent, type StepEvent, stepEvent } from './events.js';
import { assertFiniteShard, type ReducedStep } from './reduce.js';
import { reductionFor } from './reduction.js';
import { TrainingState } from './training-state.js';

export interface TrainLocalOptions extends Partial<TrainingConfig>, DatasetSource {
  readonly backend?: BackendPreference;
  /** Evaluate on the full test set after every epoch (default true). */
  readonly evaluate?: boolean;
  /** Save the final model here in the TF.js layers format. */
  readonly outDir?: string;
  readonly onStep?: (event: StepEvent) => void;
  readonly onEpoch?: (event: EpochEvent) => void;
}

export interface TrainLocalResult {
  readonly model: LayersModel;
  readonly weights: Float32Array;
  readonly backend: BackendChoice;
  readonly steps: number;
  readonly epochs: number;
  /** Test-set figures after the last epoch (NaN when evaluation was off). */
  readonly testLoss: number;
  readonly testAccuracy: number;
  readonly samplesPerSecond: number;
}

/**
 * Trains in this one process, from the same pieces the distributed trainer uses (sampler, flat
 * gradients, shard reduction, flat optimizer): with the same config it computes the same steps as a
 * coordinator with one worker.
 */
export async function trainLocal(options: TrainLocalOptions = {}): Promise<TrainLocalResult> {
  const config = resolveTrainingConfig(options);
  const backend = await initBackend(options.backend ?? 'auto');
  const dataset = await datasetFrom(options);
  const model = buildModel(config.model, { seed: config.seed });
  const layout = parameterLayout(model);
  const state = new TrainingState(config, readFlatWeights(model, layout), dataset.train.count);

  let testLoss = Number.NaN;
  let testAccuracy = Number.NaN;
  let trainedSamples = 0;
  const reduceStep = localStepReducer(config, model, layout);
  // Every step's batch is written into these (the input tensor copies it out before the next).
  const batchBuffers = {
    pixels: new Float32Array(config.batchSize * dataset.train.rows * dataset.train.cols),
    labels: new Int32Array(config.batchSize),
  };
  const started = performance.now();
  while (!state.finished) {
    const { epoch } = state.position;
    const samples = state.gatherTrainingSamples(dataset.train, state.nextBatchIndices());
    const batch = batchFromBytes(samples.images, samples.labels, batchBuffers);
    const reduced = reduceStep(batch);
    const learningRate = state.applyStep(reduced);
    writeFlatWeights(model, state.weights, layout);
    trainedSamples += reduced.count;
    const samplesPerSecond = trainedSamples / ((performance.now() - started) / 1000);
    options.onStep?.(stepEvent(state, epoch, reduced, learningRate, samplesPerSecond));
    if (state.endedEpoch(epoch) && options.evaluate !== false) {
      const totals = evaluateImageSet(model, dataset.test);
      testLoss = totals.lossSum / totals.count;
      testAccuracy = totals.correct / totals.count;
      options.onEpoch?.({ epoch, testLoss, testAccuracy });
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
    testLoss,
    testAccuracy,
    samplesPerSecond: trainedSamples / seconds,
  };
}

/** One process's gradient for a whole global batch, reduced the way a coordinator reduces its shards. */
function localStepReducer(
  config: TrainingConfig,
  model: LayersModel,
  layout: ParameterLayout,
): (batch: ImageBatch) => ReducedStep {
  const reduction = reductionFor(config, layout.totalSize);
  // The shard's gradient, reused every step: the reduction has read it by the time finish returns.
  const gradient = new Float32Array(layout.totalSize);
  return (batch) => {
    // One worker slot: the whole batch is the step's only shard (the tree's root, or one even shard).
    reduction.begin(reduction.plan(batch.count, 1));
    const result = reduction.computeShard(model, batch, layout, gradient);
    assertFiniteShard(result, 0, layout.totalSize);
    reduction.add(0, result);
    return reduction.finish();
  };
}
