import { shiftImages } from '../data/augment.js';
import { batchesPerEpoch, EpochSampler, type SamplerPosition } from '../data/sampler.js';
import { gatherSamples, type RawSamples, type SampleSet } from '../data/samples.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import type { Optimizer } from '../optim/optimizer.js';
import { createOptimizer } from '../optim/registry.js';
import { type LearningRateSchedule, learningRateAt } from '../optim/schedules.js';
import type { ParameterLayout } from '../params/layout.js';
import { sampleKey } from '../task/dropout.js';
import type { Checkpoint } from './checkpoint.js';
import { resolveTrainingConfig, type TrainingConfig } from './config.js';
import type { ReducedStep } from './reduce.js';
import { applyStatistics } from './statistics.js';

/** The layout of a model whose weights are all trainable, for a state built without a model. */
export function allTrainable(size: number): ParameterLayout {
  return { entries: [], totalSize: size, trainableSize: size };
}

/**
 * How many steps a run of `config` over `datasetSize` training samples has: its epochs of batches (as
 * the sampler cuts them), or `maxSteps` if fewer.
 */
export function runSteps(config: TrainingConfig, datasetSize: number): number {
  const all = config.epochs * batchesPerEpoch(datasetSize, config.batchSize);
  return config.maxSteps === undefined ? all : Math.min(all, config.maxSteps);
}

/**
 * The authoritative state of a synchronous run: flat weights, optimizer, step counter and the
 * sampler that fixes each step's global batch. Everything a checkpoint needs lives here; trainLocal and
 * the coordinator drive the same class, which is why one worker and one process give the same weights.
 */
export class TrainingState {
  readonly weights: Float32Array;
  readonly optimizer: Optimizer;
  readonly sampler: EpochSampler;
  readonly totalSteps: number;
  readonly schedule: LearningRateSchedule;
  readonly config: TrainingConfig;
  /** Which weights the optimizer moves (a prefix) and which are statistics. */
  readonly layout: ParameterLayout;
  #step = 0;

  /** Throws INVALID_ARGUMENT naming the field if `unchecked` is invalid or contradicts itself. */
  constructor(
    unchecked: TrainingConfig,
    initialWeights: Float32Array,
    datasetSize: number,
    layout: ParameterLayout = allTrainable(initialWeights.length),
  ) {
    const config = resolveTrainingConfig(unchecked);
    if (layout.totalSize !== initialWeights.length) {
      throw new CallosumError(
        ErrorCodes.SHAPE_MISMATCH,
        `the weight layout covers ${layout.totalSize} values, the weights are ${initialWeights.length}`,
      );
    }
    this.config = config;
    this.layout = layout;
    this.weights = initialWeights.slice();
    this.optimizer = createOptimizer(config.optimizer, layout.trainableSize);
    this.sampler = new EpochSampler({ datasetSize, batchSize: config.batchSize, seed: config.seed });
    this.totalSteps = runSteps(config, datasetSize);
    this.schedule =
      config.schedule.kind === 'cosine' && config.schedule.totalSteps === 0
        ? { ...config.schedule, totalSteps: this.totalSteps }
        : config.schedule;
    // Validates the schedule and rate once, up front, instead of at the first step.
    learningRateAt(config.learningRate, this.schedule, 0);
  }

  /** Number of optimizer steps applied so far. */
  get step(): number {
    return this.#step;
  }

  get finished(): boolean {
    return this.#step >= this.totalSteps;
  }

  /** True when the step just applied, whose batch came from `epoch`, was that epoch's last. */
  endedEpoch(epoch: number): boolean {
    return this.finished || this.position.epoch !== epoch;
  }

  /** Where the next step's global batch comes from. */
  get position(): SamplerPosition {
    return this.sampler.positionAtStep(this.#step);
  }

  /**
   * The training samples at `indices` (all or part of the batch of `step`, by default the next step's),
   * augmented as the config says for that step's epoch (images only: samples of shape [rows, cols] or
   * [rows, cols, channels]). The same samples come out whichever shard they are gathered in.
   */
  gatherTrainingSamples(set: SampleSet, indices: Uint32Array, step = this.#step): RawSamples {
    const { maxShift, seed } = this.config;
    const { epoch } = this.sampler.positionAtStep(step);
    const samples = {
      ...gatherSamples(set, indices),
      keys: indices.map((index) => sampleKey(seed, epoch, index)),
    };
    if (maxShift === 0) return samples;
    const [rows, cols, channels = 1] = set.features.sampleShape as [number, number, number?];
    return {
      ...samples,
      features: shiftImages(samples.features, indices, rows, cols, maxShift, seed, epoch, channels),
    };
  }

  /** Sample indices of the global batch of `step`, by default the next step's. */
  batchIndices(step = this.#step): Uint32Array {
    const { epoch, batchIndex } = this.sampler.positionAtStep(step);
    return this.sampler.batchIndices(epoch, batchIndex);
  }

  /** The learning rate the next step will use. */
  get learningRate(): number {
    return learningRateAt(this.config.learningRate, this.schedule, this.#step);
  }

  /** Everything needed to continue this run exactly (see checkpoint.ts). */
  checkpoint(): Checkpoint {
    return {
      config: this.config,
      datasetSize: this.sampler.datasetSize,
      step: this.#step,
      weights: this.weights.slice(),
      optimizer: this.optimizer.exportState(),
    };
  }

  /** A state that continues exactly where `checkpoint` left off. */
  static restore(checkpoint: Checkpoint, datasetSize: number, layout?: ParameterLayout): TrainingState {
    // Other training data would give other batches from the same step on: another run, not this one.
    if (checkpoint.datasetSize !== undefined && checkpoint.datasetSize !== datasetSize) {
      throw new CallosumError(
        ErrorCodes.ARTIFACT_INVALID,
        `the checkpoint's run trains on ${checkpoint.datasetSize} samples, and this one has ${datasetSize}: ` +
          "its training data are not the run's (a task whose data changed, or fit given another validationSplit or validationData)",
      );
    }
    const state = new TrainingState(checkpoint.config, checkpoint.weights, datasetSize, layout);
    state.optimizer.importState(checkpoint.optimizer);
    if (!Number.isSafeInteger(checkpoint.step) || checkpoint.step < 0 || checkpoint.step > state.totalSteps) {
      throw new CallosumError(
        ErrorCodes.ARTIFACT_INVALID,
        `checkpoint step ${checkpoint.step} is outside this run`,
      );
    }
    state.#step = checkpoint.step;
    return state;
  }

  /**
   * Counts a step that replicas elsewhere applied (ring topology): this state's weights and optimizer
   * fall behind until `adopt` brings a replica's back. Returns the learning rate the step used.
   */
  advanceWithoutApplying(): number {
    const learningRate = this.learningRate;
    this.#step += 1;
    return learningRate;
  }

  /** Takes a replica's weights and optimizer state, which must be at this state's step of this run. */
  adopt(replica: Checkpoint): void {
    if (replica.step !== this.#step || replica.weights.length !== this.weights.length) {
      throw new CallosumError(
        ErrorCodes.ARTIFACT_INVALID,
        `a replica at step ${replica.step} with ${replica.weights.length} weights, this run is at step ${this.#step} with ${this.weights.length}`,
      );
    }
    if (JSON.stringify(replica.config) !== JSON.stringify(this.config)) {
      throw new CallosumError(ErrorCodes.ARTIFACT_INVALID, 'a replica of another run (its config differs)');
    }
    this.optimizer.importState(replica.optimizer);
    this.weights.set(replica.weights);
  }

  /** Applies one reduced global batch; returns the learning rate used. */
  applyStep(reduced: ReducedStep): number {
    const learningRate = this.learningRate;
    const trainable = this.layout.trainableSize;
    this.optimizer.step(
      this.weights.subarray(0, trainable),
      reduced.meanGradient.subarray(0, trainable),
      learningRate,
    );
    applyStatistics(this.weights, reduced.meanGradient, this.layout);
    this.#step += 1;
    return learningRate;
  }
}
