import {
  type BatchTotals,
  batchFromBytes,
  buildModel,
  CallosumError,
  type ComputeRequest,
  type ComputeTimings,
  ErrorCodes,
  type EvaluateRequest,
  evaluateInChunks,
  fromWireTensor,
  type GradientResult,
  type ImageBatch,
  type LayersModel,
  type ParameterLayout,
  parameterLayout,
  type Reduction,
  reductionFor,
  type ShardRange,
  sliceImageBatch,
  type Welcome,
  writeFlatWeights,
} from '@callosum/core';

/** Samples [start, end) of a shard. */
export type ShardPiece = Pick<ShardRange, 'start' | 'end'>;

/**
 * The compute side of a worker, with no transport: holds the model the coordinator described and the
 * latest weights it sent, and answers compute/evaluate requests. Stateless beyond that cache, so a
 * reconnecting worker simply receives the current weights again.
 */
export class GradientService {
  private model: LayersModel | undefined;
  private layout: ParameterLayout | undefined;
  private modelKey = '';
  private pendingWeights: { version: number; values: Float32Array } | undefined;
  private loadedVersion = -1;
  /** How the run adds shards up, from the welcome: it decides how each shard's gradient is computed. */
  private reduction: Reduction | undefined;

  /**
   * Builds the model named in the welcome, unless the same one is already built, and takes the run's
   * reduction from it. Weights are always forgotten: versions are only meaningful within one connection
   * to one run.
   */
  configure(welcome: Welcome): void {
    this.loadedVersion = -1;
    this.pendingWeights = undefined;
    const key = JSON.stringify(welcome.model);
    if (key !== this.modelKey || this.model === undefined) {
      this.model?.dispose();
      this.model = buildModel(welcome.model);
      this.layout = parameterLayout(this.model);
      this.modelKey = key;
    }
    const parameterCount = (this.layout as ParameterLayout).totalSize;
    if (parameterCount !== welcome.parameterCount) {
      throw new CallosumError(
        ErrorCodes.SHAPE_MISMATCH,
        `model ${welcome.model.name} has ${parameterCount} parameters here, the coordinator says ${welcome.parameterCount}`,
      );
    }
    this.reduction = reductionFor(welcome, parameterCount);
  }

  /** Keeps the weights until a request needs them; later versions replace earlier unused ones. */
  receiveWeights(version: number, weights: Float32Array): void {
    this.pendingWeights = { version, values: weights };
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

  /** Parameters of the configured model: the length of a gradient. */
  get parameterCount(): number {
    return this.configured().layout.totalSize;
  }

  /**
   * `into`, if given, receives the gradient (e.g. the payload of the frame that will carry it). Without
   * it, a micro-batched shard's gradient lives in scratch memory that the next request reuses.
   */
  computeGradient(
    request: ComputeRequest,
    into?: Float32Array,
  ): { result: GradientResult; timings: ComputeTimings } {
    const { reduction } = this.configured();
    const answer = this.run(request, (model, batch, layout) =>
      reduction.computeShard(model, batch, layout, into),
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
    const { reduction } = this.configured();
    const answer = this.run(request, (model, batch, layout) =>
      pieces.map(({ start, end }, index) =>
        reduction.computeShard(model, sliceImageBatch(batch, start, end), layout, outputs[index]),
      ),
    );
    if (answer.result.some((result, index) => result.gradient !== outputs[index])) {
      throw new CallosumError(ErrorCodes.INTERNAL, 'a piece was not written into its buffer');
    }
    return { results: answer.result, timings: answer.timings };
  }

  evaluate(request: EvaluateRequest): { result: BatchTotals; timings: ComputeTimings } {
    return this.run(request, (model, batch) => evaluateInChunks(model, batch));
  }

  dispose(): void {
    this.model?.dispose();
    this.model = undefined;
  }

  private run<T>(
    request: ComputeRequest | EvaluateRequest,
    work: (model: LayersModel, batch: ImageBatch, layout: ParameterLayout) => T,
  ): { result: T; timings: ComputeTimings } {
    const started = performance.now();
    const { model, layout } = this.modelWithWeights(request.weightsVersion);
    const count = request.labels.shape[0] ?? 0;
    const [, rows, cols] = model.inputs[0]?.shape ?? [];
    const images = fromWireTensor(request.images, 'uint8', [count, rows ?? 0, cols ?? 0]);
    const labels = fromWireTensor(request.labels, 'uint8', [count]);
    const batch = batchFromBytes(images, labels);
    const decoded = performance.now();
    const result = work(model, batch, layout);
    const computed = performance.now();
    return { result, timings: { decodeMs: decoded - started, computeMs: computed - decoded } };
  }

  private configured(): { model: LayersModel; layout: ParameterLayout; reduction: Reduction } {
    if (this.model === undefined || this.layout === undefined || this.reduction === undefined) {
      throw new CallosumError(ErrorCodes.UNEXPECTED_MESSAGE, 'a request arrived before the welcome');
    }
    return { model: this.model, layout: this.layout, reduction: this.reduction };
  }

  private modelWithWeights(version: number): { model: LayersModel; layout: ParameterLayout } {
    const { model, layout } = this.configured();
    if (this.loadedVersion !== version) {
      writeFlatWeights(model, this.weights(version), layout);
      this.loadedVersion = version;
    }
    return { model, layout };
  }
}
