import {
  type BatchNormRequest,
  type BatchTotals,
  CallosumError,
  type ComputeRequest,
  type ComputeTimings,
  ErrorCodes,
  type EvaluateRequest,
  type GradientResult,
  type ParameterLayout,
  type Reduction,
  reductionFor,
  type StepPlan,
  type Welcome,
} from '@callosum/core';
import type { ComputeThreads } from './compute-threads.js';
import type { GradientService, ShardPiece } from './gradient-service.js';

/**
 * A GradientService whose shards are computed by this thread and the compute threads together: each
 * shard is cut into one part per thread as the run's reduction plans it (micro-batches: tree nodes;
 * otherwise contiguous pieces), every piece is computed as a shard of its own, and the reduction adds the
 * pieces in its fixed order. With micro-batches that is bit-identical to one thread; without, the same
 * bits for the same thread count.
 */
export class ThreadedGradientService {
  private reduction: Reduction | undefined;
  /** The run's weights, shared with the threads; `sharedVersion` is the version they hold. */
  private sharedWeights = new Float32Array(new SharedArrayBuffer(0));
  private sharedVersion = -1;
  /** One gradient buffer per piece, kept from step to step (allocating megabytes per step costs more). */
  private readonly pieceOutputs: Float32Array[] = [];
  private scratch: Float32Array | undefined;

  constructor(
    private readonly own: GradientService,
    private readonly threads: ComputeThreads,
  ) {}

  /** The threads in all, this one included. */
  get threadCount(): number {
    return this.threads.count + 1;
  }

  /**
   * Whether the shard's BatchNormalization statistics are its own, computed over all of it: pieces would
   * each be normalised with theirs, a different computation. Not so with micro-batches (each is normalised
   * with its own, whoever computes it) nor in a synchronised step (the request carries the statistics).
   */
  private normalisesWholeShard(request: ComputeRequest): boolean {
    return (
      this.configuredReduction().settings.microBatchSize === undefined &&
      request.batchNorm === undefined &&
      this.own.layout.entries.some((entry) => entry.role === 'statistic')
    );
  }

  /** Why the threads can no longer compute, once one has crashed. */
  get failure(): string | undefined {
    return this.threads.failure;
  }

  get parameterCount(): number {
    return this.own.parameterCount;
  }

  get layout(): ParameterLayout {
    return this.own.layout;
  }

  async configure(welcome: Welcome): Promise<void> {
    this.own.configure(welcome);
    const parameterCount = this.own.parameterCount;
    this.reduction = reductionFor(welcome, parameterCount);
    this.sharedVersion = -1;
    if (this.sharedWeights.length !== parameterCount) {
      this.sharedWeights = new Float32Array(new SharedArrayBuffer(parameterCount * 4));
      this.pieceOutputs.length = 0;
      this.scratch = undefined;
    }
    await this.threads.requestAll({
      type: 'configure',
      welcome,
      weights: this.sharedWeights.buffer as SharedArrayBuffer,
    });
  }

  /** As GradientService.receiveWeights (the threads are given copies). */
  receiveWeights(version: number, weights: Float32Array): Float32Array | undefined {
    // As in GradientService: the threads take them even for the version they hold.
    this.sharedVersion = -1;
    return this.own.receiveWeights(version, weights);
  }

  /** As GradientService.computeGradient, the shard's pieces spread over the threads. */
  async computeGradient(
    request: ComputeRequest,
    into?: Float32Array,
  ): Promise<{ result: GradientResult; timings: ComputeTimings }> {
    const reduction = this.configuredReduction();
    const plan = reduction.plan(request.labels.shape[0] ?? 0, this.threadCount);
    // One piece (a single sample or micro-batch), or a shard that must be normalised as a whole: this
    // thread alone, as without threads.
    if (plan.shards.length < 2 || this.normalisesWholeShard(request)) {
      return this.own.computeGradient(request, into);
    }
    const started = performance.now();
    this.shareWeights(request.weightsVersion);
    const outputs = this.outputs(plan.shards.length);
    const [own, ...others] = lanesOf(plan);
    // The threads get a copy of the shard's bytes: a view into the received frame would copy it whole.
    const shard = {
      ...request,
      features: copyOf(request.features),
      labels: copyOf(request.labels),
      keys: copyOf(request.keys),
      ...(request.batchNorm === undefined
        ? {}
        : {
            batchNorm: {
              ...request.batchNorm,
              statistics: copyOf(request.batchNorm.statistics),
              adjoints: copyOf(request.batchNorm.adjoints),
            },
          }),
    };
    const answers = others.map((lane, thread) =>
      this.threads.request(thread, {
        type: 'compute',
        request: shard,
        pieces: lane.map((index) => plan.shards[index] as ShardPiece),
        outputs: lane.map((index) => outputs[index]?.buffer as SharedArrayBuffer),
      }),
    );
    try {
      const results: GradientResult[] = [];
      const mine = own ?? [];
      const computed = this.own.computePieces(
        request,
        mine.map((index) => plan.shards[index] as ShardPiece),
        mine.map((index) => outputs[index] as Float32Array),
      );
      for (const [position, index] of mine.entries())
        results[index] = computed.results[position] as GradientResult;
      for (const [thread, answer] of (await Promise.all(answers)).entries()) {
        for (const [position, index] of (others[thread] ?? []).entries()) {
          const totals = answer.totals[position] as BatchTotals;
          results[index] = { ...totals, gradient: outputs[index] as Float32Array };
        }
      }
      const result = reduction.combinePieces(plan, results, into ?? this.scratchBuffer());
      const { decodeMs } = computed.timings;
      return { result, timings: { decodeMs, computeMs: performance.now() - started - decodeMs } };
    } finally {
      // Never return (and let the next shard reuse the buffers) while a thread may still write them.
      await Promise.allSettled(answers);
    }
  }

  evaluate(request: EvaluateRequest) {
    return this.own.evaluate(request);
  }

  /** A BatchNormalization pass of a shard is computed by this thread alone (the threads split only gradients). */
  batchNormPass(request: BatchNormRequest) {
    return this.own.batchNormPass(request);
  }

  async dispose(): Promise<void> {
    this.own.dispose();
    await this.threads.close();
  }

  private configuredReduction(): Reduction {
    if (this.reduction === undefined) {
      throw new CallosumError(ErrorCodes.UNEXPECTED_MESSAGE, 'a request arrived before the welcome');
    }
    return this.reduction;
  }

  /** Puts weights `version` where the threads read them, once per version. */
  private shareWeights(version: number): void {
    if (this.sharedVersion === version) return;
    this.sharedWeights.set(this.own.weights(version));
    this.sharedVersion = version;
  }

  private outputs(count: number): Float32Array[] {
    while (this.pieceOutputs.length < count) {
      this.pieceOutputs.push(new Float32Array(new SharedArrayBuffer(this.parameterCount * 4)));
    }
    return this.pieceOutputs;
  }

  private scratchBuffer(): Float32Array {
    this.scratch ??= new Float32Array(this.parameterCount);
    return this.scratch;
  }
}

/** The indices of the plan's pieces for each lane (thread), in plan order; lane 0 is this thread. */
function lanesOf(plan: StepPlan): number[][] {
  const lanes: number[][] = [];
  for (const [index, { part }] of plan.shards.entries()) {
    const lane = lanes[part] ?? [];
    lane.push(index);
    lanes[part] = lane;
  }
  return lanes;
}

function copyOf<T extends { bytes: Uint8Array }>(tensor: T): T {
  return { ...tensor, bytes: tensor.bytes.slice() };
}
