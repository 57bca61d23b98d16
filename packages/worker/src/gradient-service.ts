import {
  type BatchNormRequest,
  type BatchTotals,
  batchNormChannels,
  CallosumError,
  type ComputeRequest,
  type ComputeTimings,
  computeGradients,
  computeShardAdjoint,
  computeShardMoments,
  ErrorCodes,
  type EvaluateRequest,
  evaluateInChunks,
  floatsFromWire,
  type GradientResult,
  instantiateTask,
  mnistTask,
  type ParameterLayout,
  type Reduction,
  reductionFor,
  type SampleBatch,
  type ShardRange,
  type SyncedStatistics,
  samplesFromWire,
  sliceBatch,
  statisticsLength,
  type Task,
  type TaskModel,
  toSampleBatch,
  type Welcome,
  type WireTensor,
  writeFlatWeights,
} from '@callosum/core';

/** Samples [start, end) of a shard. */
export type ShardPiece = Pick<ShardRange, 'start' | 'end'>;

/**
 * The compute side of a worker, with no transport: holds the model the coordinator described (a
 * built-in model, or the task this worker loaded) and the latest weights it sent, and answers
 * compute/evaluate requests. Stateless beyond that cache, so a reconnecting worker simply receives the
 * current weights again.
 */
export class GradientService {
  private taskModel: TaskModel | undefined;
  private modelKey = '';
  private pendingWeights: { version: number; values: Float32Array } | undefined;
  private loadedVersion = -1;
  /** How the run adds shards up, from the welcome: it decides how each shard's gradient is computed. */
  private reduction: Reduction | undefined;

  /** @param task the task this worker loaded (`--task`); without one it serves runs of built-in models. */
  constructor(private readonly task?: Task) {}

  /**
   * Builds the model the welcome names, unless the same one is already built, and takes the run's
   * reduction from it. Weights are always forgotten: versions are only meaningful within one connection
   * to one run.
   */
  configure(welcome: Welcome): void {
    this.loadedVersion = -1;
    this.pendingWeights = undefined;
    const task = this.taskFor(welcome);
    const key = JSON.stringify(welcome.model ?? welcome.task);
    if (key !== this.modelKey || this.taskModel === undefined) {
      this.taskModel?.model.dispose();
      // The seed does not matter: the coordinator sends the weights.
      this.taskModel = instantiateTask(task, 0);
      this.modelKey = key;
    }
    const parameterCount = this.taskModel.layout.totalSize;
    if (parameterCount !== welcome.parameterCount) {
      throw new CallosumError(
        ErrorCodes.SHAPE_MISMATCH,
        `task ${task.name} has ${parameterCount} parameters here, the coordinator says ${welcome.parameterCount}: ` +
          "its model must be the same everywhere, whatever the seed (this worker builds it with seed 0 and takes the coordinator's weights)",
      );
    }
    this.reduction = reductionFor(welcome, parameterCount);
  }

  /** The coordinator refuses a worker whose task differs, so a mismatch here is a coordinator's bug. */
  private taskFor(welcome: Welcome): Task {
    if (welcome.model !== undefined && this.task === undefined) return mnistTask(welcome.model);
    if (welcome.task !== undefined && this.task !== undefined) return this.task;
    throw new CallosumError(
      ErrorCodes.TASK_MISMATCH,
      welcome.task === undefined
        ? `the run trains the built-in model ${welcome.model?.name}, this worker was started with task ${this.task?.name}`
        : `the run trains task ${welcome.task.name}; start this worker with --task`,
    );
  }

  /**
   * Keeps the weights until a request needs them; later versions replace earlier unused ones. Weights
   * received again for the version the model holds replace it too (a ring replica that was replaced).
   * Returns the weights it kept before, which nothing here refers to any more.
   */
  receiveWeights(version: number, weights: Float32Array): Float32Array | undefined {
    const replaced = this.pendingWeights?.values;
    this.pendingWeights = { version, values: weights };
    this.loadedVersion = -1;
    return replaced;
  }

  /** The weights of `version`, as received; a request for any other version is stale. */
  weights(version: number): Float32Array {
    if (this.pendingWeights?.version !== version) {
      throw new CallosumError(
        ErrorCodes.STALE_MESSAGE,
        `request needs weights version ${version}, this worker has ${this.pendingWeights?.version ?? 'none'}`,
      );
    }
    return this.pendingWeights.values;
  }

  /** Where each of the configured model's weights sits in the flat vector. */
  get layout(): ParameterLayout {
    return this.configured().taskModel.layout;
  }

  /** Parameters of the configured model: the length of a gradient. */
  get parameterCount(): number {
    return this.configured().taskModel.layout.totalSize;
  }

  /**
   * `into`, if given, receives the gradient (e.g. the payload of the frame that will carry it). Without
   * it, a micro-batched shard's gradient lives in scratch memory that the next request reuses.
   */
  computeGradient(
    request: ComputeRequest,
    into?: Float32Array,
  ): { result: GradientResult; timings: ComputeTimings } {
    const answer = this.run(request, (taskModel, batch) =>
      this.computeShard(request, taskModel, batch, into),
    );
    // The frame carrying the gradient is sent as it is: it must hold the gradient, not stale memory.
    if (into !== undefined && answer.result.gradient !== into) {
      throw new CallosumError(ErrorCodes.INTERNAL, 'the gradient was not written into its frame');
    }
    return answer;
  }

  /**
   * Samples [start, end) of a request's shard for each piece, each computed as a whole shard would be
   * and written into its own buffer: the part of a shard that one compute thread takes.
   */
  computePieces(
    request: ComputeRequest,
    pieces: readonly ShardPiece[],
    outputs: readonly Float32Array[],
  ): { results: GradientResult[]; timings: ComputeTimings } {
    const answer = this.run(request, (taskModel, batch) =>
      pieces.map(({ start, end }, index) =>
        this.computeShard(request, taskModel, sliceBatch(batch, start, end), outputs[index]),
      ),
    );
    if (answer.result.some((result, index) => result.gradient !== outputs[index])) {
      throw new CallosumError(ErrorCodes.INTERNAL, 'a piece was not written into its buffer');
    }
    return { results: answer.result, timings: answer.timings };
  }

  /**
   * A shard's gradient as the run's reduction computes it; in a synchronised BatchNormalization step,
   * with the global statistics the request carries (such a step has no micro-batches).
   */
  private computeShard(
    request: ComputeRequest,
    taskModel: TaskModel,
    batch: SampleBatch,
    into: Float32Array | undefined,
  ): GradientResult {
    const { reduction } = this.configured();
    if (request.batchNorm === undefined) return reduction.computeShard(taskModel, batch, into);
    if (reduction.identicalAtAnyWorkerCount) {
      throw new CallosumError(
        ErrorCodes.MALFORMED_MESSAGE,
        'a synchronised BatchNormalization step in a run with micro-batches (they normalise each micro-batch)',
      );
    }
    return computeGradients(taskModel, batch, into, syncedStatistics(taskModel, request.batchNorm));
  }

  /** A pass of a synchronised BatchNormalization step over one shard: what `batch-norm-result` carries. */
  batchNormPass(request: BatchNormRequest): {
    result: { values: Float32Array; elements?: number; count: number };
    timings: ComputeTimings;
  } {
    return this.run(request, (taskModel, batch) => {
      const { layer } = request;
      const { statistics, adjoints, samples } = syncedStatistics(taskModel, request);
      if (request.kind === 'adjoint') {
        const values = computeShardAdjoint(taskModel, batch, {
          kind: 'adjoint',
          layer,
          statistics,
          adjoints,
          samples,
        });
        return { values, count: batch.count };
      }
      const moments = computeShardMoments(taskModel, batch, { kind: 'moments', layer, statistics });
      const values = new Float32Array(2 * moments.mean.length);
      values.set(moments.mean);
      values.set(moments.squaredDeviations, moments.mean.length);
      return { values, elements: moments.elements, count: batch.count };
    });
  }

  evaluate(request: EvaluateRequest): { result: BatchTotals; timings: ComputeTimings } {
    return this.run(request, (taskModel, batch) => evaluateInChunks(taskModel, batch));
  }

  dispose(): void {
    this.taskModel?.model.dispose();
    this.taskModel = undefined;
  }

  private run<T>(
    request: ComputeRequest | EvaluateRequest | BatchNormRequest,
    work: (taskModel: TaskModel, batch: SampleBatch) => T,
  ): { result: T; timings: ComputeTimings } {
    const started = performance.now();
    const taskModel = this.modelWithWeights(request.weightsVersion);
    const batch = toSampleBatch(samplesFromWire(request), taskModel.conversion);
    const decoded = performance.now();
    const result = work(taskModel, batch);
    const computed = performance.now();
    return { result, timings: { decodeMs: decoded - started, computeMs: computed - decoded } };
  }

  private configured(): { taskModel: TaskModel; reduction: Reduction } {
    if (this.taskModel === undefined || this.reduction === undefined) {
      throw new CallosumError(ErrorCodes.UNEXPECTED_MESSAGE, 'a request arrived before the welcome');
    }
    return { taskModel: this.taskModel, reduction: this.reduction };
  }

  private modelWithWeights(version: number): TaskModel {
    const { taskModel } = this.configured();
    if (this.loadedVersion !== version) {
      writeFlatWeights(taskModel.model, this.weights(version), taskModel.layout);
      this.loadedVersion = version;
    }
    return taskModel;
  }
}

/** A request's synchronised statistics, checked against the model's BatchNormalization layers. */
function syncedStatistics(
  taskModel: TaskModel,
  wire: { statistics: WireTensor; adjoints: WireTensor; samples: number },
): SyncedStatistics {
  const length = statisticsLength(batchNormChannels(taskModel.model));
  return {
    statistics: floatsFromWire(wire.statistics, 'float32', [length]),
    adjoints: floatsFromWire(wire.adjoints, 'float32', [length]),
    samples: wire.samples,
  };
}
