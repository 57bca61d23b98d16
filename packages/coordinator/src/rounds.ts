import {
  addTotals,
  type BatchTotals,
  CallosumError,
  type Codec,
  type ComputeTimings,
  cutIntoShards,
  EMPTY_TOTALS,
  ErrorCodes,
  evenShardSizes,
  type GradientResult,
  gatherBytes,
  type ImageSet,
  type MnistDataset,
  OrderedGradientSum,
  type SampleBytes,
  stepEvent,
  type TrainingState,
  toWireTensor,
} from '@callosum/core';
import type { Membership } from './membership.js';
import type { StepReport } from './options.js';
import type { ShardDispatcher, ShardOutcome, ShardTask } from './shard-dispatcher.js';
import type { WorkerConnection } from './worker-connection.js';

/** A validated `gradient` message, as the dispatcher collects it. */
export interface GradientReply {
  readonly gradient: GradientResult;
  readonly timings: ComputeTimings;
}

/** A validated `evaluation` message, as the dispatcher collects it. */
export interface EvaluationReply {
  readonly totals: BatchTotals;
  readonly timings: ComputeTimings;
}

export interface RoundsContext {
  readonly state: TrainingState;
  readonly dataset: MnistDataset;
  readonly codec: Codec;
  readonly membership: Membership;
  readonly dispatcher: ShardDispatcher;
}

/**
 * The two kinds of round a run is made of, a training step and an evaluation pass over the test set:
 * cuts the samples into one shard per healthy worker, sends each shard with the weights it needs, and
 * reduces what the dispatcher collects.
 */
export class Rounds {
  private readonly gradientSum: OrderedGradientSum;
  /** The current weights, encoded at most once per version and framing (1.0 peers: plain MessagePack). */
  private weightsFrames: { version: number; plain?: Uint8Array; tensor?: Uint8Array } = { version: -1 };
  private evaluationRound = 0;

  constructor(private readonly context: RoundsContext) {
    this.gradientSum = new OrderedGradientSum(context.state.weights.length);
  }

  /** One synchronous step: every shard of the next global batch, reduced in shard order, applied. */
  async trainStep(): Promise<StepReport> {
    const { state, dataset, dispatcher } = this.context;
    const started = performance.now();
    const { epoch } = state.position;
    const step = state.step;
    const gatherTraining = (shardIndices: Uint32Array) =>
      state.gatherTrainingSamples(dataset.train, shardIndices);
    const tasks = this.shardTasks(state.nextBatchIndices(), gatherTraining, (shard, images, labels) => ({
      type: 'compute',
      step,
      shard,
      weightsVersion: step,
      ...imageTensors(images, labels, dataset.train),
    }));
    const sum = this.gradientSum;
    sum.begin(tasks.length);
    const outcomes = await dispatcher.run<GradientReply>(`step ${step}`, tasks, (shard, reply) =>
      sum.add(shard, reply.gradient),
    );
    const collected = performance.now();
    const reduced = sum.reduce();
    const learningRate = state.applyStep(reduced);
    const finished = performance.now();
    return {
      ...stepEvent(state, epoch, reduced, learningRate, reduced.count / ((finished - started) / 1000)),
      workers: new Set(outcomes.map((outcome) => outcome.worker)).size,
      perWorker: perWorkerTimings(outcomes, collected),
      updateMs: finished - collected,
      stepMs: finished - started,
    };
  }

  /** Loss and accuracy on the whole test set with the current weights: every sample counted once. */
  async evaluate(): Promise<BatchTotals> {
    const { state, dataset, dispatcher } = this.context;
    const round = this.evaluationRound++;
    const indices = Uint32Array.from({ length: dataset.test.count }, (_, i) => i);
    const gatherTest = (shardIndices: Uint32Array) => gatherBytes(dataset.test, shardIndices);
    const tasks = this.shardTasks(indices, gatherTest, (shard, images, labels) => ({
      type: 'evaluate',
      round,
      shard,
      weightsVersion: state.step,
      ...imageTensors(images, labels, dataset.test),
    }));
    const outcomes = await dispatcher.run<EvaluationReply>(`evaluation ${round}`, tasks);
    const totals = outcomes.reduce((sum, outcome) => addTotals(sum, outcome.result.totals), EMPTY_TOTALS);
    if (totals.count !== dataset.test.count) {
      throw new CallosumError(
        ErrorCodes.COMPUTE_FAILED,
        `evaluation counted ${totals.count} of ${dataset.test.count} test samples`,
      );
    }
    return totals;
  }

  /** Tasks for the shards of `indices`, one per healthy worker, in worker order. */
  private shardTasks(
    indices: Uint32Array,
    gather: (shardIndices: Uint32Array) => SampleBytes,
    request: (
      shard: number,
      images: Uint8Array,
      labels: Uint8Array,
    ) => Parameters<WorkerConnection['send']>[0],
  ): ShardTask[] {
    const parts = Math.max(1, this.context.membership.healthy().length);
    const sizes = evenShardSizes(indices.length, parts).filter((size) => size > 0);
    return cutIntoShards(indices, sizes).map((shardIndices, index) => {
      const { images, labels } = gather(shardIndices);
      const message = request(index, images, labels);
      return {
        index,
        count: shardIndices.length,
        send: (worker) => {
          this.sendCurrentWeights(worker);
          worker.send(message);
        },
      };
    });
  }

  /** Workers get the weights once per version; the frame is encoded once for all of them. */
  private sendCurrentWeights(worker: WorkerConnection): void {
    const { state, codec } = this.context;
    const version = state.step;
    if (worker.weightsVersion === version) return;
    if (this.weightsFrames.version !== version) this.weightsFrames = { version };
    const framing = worker.readsTensorFrames ? 'tensor' : 'plain';
    let frame = this.weightsFrames[framing];
    if (frame === undefined) {
      const weights = toWireTensor(state.weights, [state.weights.length]);
      frame = codec.encode({ type: 'weights', version, weights }, { tensorFrame: framing === 'tensor' });
      this.weightsFrames[framing] = frame;
    }
    worker.sendFrame(frame);
    worker.weightsVersion = version;
  }
}

function imageTensors(images: Uint8Array, labels: Uint8Array, set: ImageSet) {
  return {
    images: toWireTensor(images, [labels.length, set.rows, set.cols]),
    labels: toWireTensor(labels, [labels.length]),
  };
}

function perWorkerTimings(
  outcomes: readonly ShardOutcome<GradientReply>[],
  collectedAt: number,
): StepReport['perWorker'] {
  const byWorker = new Map<
    string,
    { id: string; samples: number; computeMs: number; transferMs: number; waitMs: number }
  >();
  for (const { worker, result, sentAt, receivedAt } of outcomes) {
    const entry = byWorker.get(worker.id) ?? {
      id: worker.id,
      samples: 0,
      computeMs: 0,
      transferMs: 0,
      waitMs: 0,
    };
    const inside = result.timings.decodeMs + result.timings.computeMs;
    entry.samples += result.gradient.count;
    entry.computeMs += inside;
    entry.transferMs += Math.max(0, receivedAt - sentAt - inside);
    entry.waitMs = Math.max(entry.waitMs, collectedAt - receivedAt);
    byWorker.set(worker.id, entry);
  }
  return [...byWorker.values()];
}
