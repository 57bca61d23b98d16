import {
  addTotals,
  type BatchTotals,
  CallosumError,
  type ComputeTimings,
  EMPTY_TOTALS,
  ErrorCodes,
  evenShardRanges,
  gatherSamples,
  keysToWire,
  type Objective,
  type Reduction,
  type SampleSet,
  type ShardRange,
  type StepPlan,
  type SyncedStatistics,
  samplesToWire,
  stepEvent,
  stepLabel,
  type TrainingState,
  toWireTensor,
} from '@callosum/core';
import { RoundIds } from '../dispatch/round-id.js';
import type { ShardDispatcher, ShardOutcome, ShardRequest, ShardTask } from '../dispatch/shard-dispatcher.js';
import type { StepReport } from '../options.js';
import type { RunCounters } from '../telemetry/counters.js';
import { stepBytes } from '../telemetry/step-bytes.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { WireTraffic } from '../transport/wire-traffic.js';
import type { WorkerRegistry } from '../workers/registry.js';
import type { BatchNormReply, BatchNormSync } from './batch-norm-sync.js';
import { type AppliedStep, type GradientPath, StepRedo, type StepReply } from './gradient-path.js';

/** A training shard's samples as every request of its step carries them. */
type ShardData = ReturnType<typeof samplesToWire> & { keys: ReturnType<typeof keysToWire> };

/** How many times one step may be computed (its ring reduction abandoned each time) before the run stops. */
const MAX_STEP_ATTEMPTS = 5;

/** A validated `evaluation` message, as the dispatcher collects it. */
export interface EvaluationReply {
  readonly totals: BatchTotals;
  readonly timings: ComputeTimings;
}

export interface RoundsContext {
  readonly state: TrainingState;
  readonly train: SampleSet;
  /** What evaluations cover (the task's test set, else its validation set); none: no evaluations. */
  readonly evaluationSet: SampleSet | undefined;
  readonly membership: WorkerRegistry;
  readonly dispatcher: ShardDispatcher;
  /** How training steps are planned and reduced, chosen once for the run. */
  readonly reduction: Reduction;
  /** Where the shards' gradients are reduced and applied: here (star) or among the workers (ring). */
  readonly gradients: GradientPath;
  readonly telemetry: Telemetry;
  readonly counters: RunCounters;
  /** Which figures a step reports: accuracy if the task measures it, and its other metrics. */
  readonly objective: Pick<Objective, 'measuresAccuracy' | 'metricNames'>;
  /** The workers' frames, counted per worker over each step. */
  readonly traffic: Pick<WireTraffic, 'startWindow' | 'window'>;
  /** A run whose steps synchronise BatchNormalization; undefined for any other. */
  readonly batchNorm: BatchNormSync | undefined;
}

/**
 * The two kinds of round a run is made of, a training step and an evaluation pass over the test set:
 * cuts the samples into shards for the healthy workers, hands them to the dispatcher, and reduces
 * what it collects.
 */
export class Rounds {
  private evaluationRound = 0;
  /** The next step's shards' samples, gathered while the last results of a step were still out. */
  private gathered: { step: number; shards: readonly ShardRange[]; data: ShardData[] } | undefined;

  constructor(private readonly context: RoundsContext) {}

  /**
   * One synchronous step: every shard of the next global batch, reduced, applied. A step whose
   * reduction is abandoned (ring) is computed again, up to MAX_STEP_ATTEMPTS times.
   */
  async trainStep(): Promise<StepReport> {
    const { state, dispatcher, gradients, telemetry, traffic } = this.context;
    // Every attempt's frames count towards the step.
    traffic.startWindow();
    const { epoch } = state.position;
    const step = state.step;
    for (let attempt = 0; ; attempt += 1) {
      const started = performance.now();
      await gradients.prepare();
      const plan = this.plan(step);
      // Gathered once: every pass of the step sees the same samples (augmented the same way).
      const shardData = this.shardData(step, plan.shards);
      const synced = await this.synchroniseBatchNorm(step, plan, shardData);
      const batchNorm = synced === undefined ? {} : { batchNorm: syncedToWire(synced) };
      gradients.begin(plan);
      const tasks = this.shardTasks(plan.shards, (shard) => ({
        type: 'compute',
        step,
        shard,
        weightsVersion: step,
        ...(shardData[shard] as ShardData),
        ...batchNorm,
      }));
      const prepared = performance.now();
      // The next step's samples do not depend on this one's result: they are gathered once the first
      // result is in, while the coordinator waits for the others, instead of between the steps, where
      // every worker waits for them. (Never later than there, even if the last result is in already.)
      let gatherNext = plan.shards.length > 1 && step + 1 < state.totalSteps;
      // The dispatcher sends each worker its first shards (after the weights) before it returns.
      const round = dispatcher.run<StepReply>(RoundIds.step(step), tasks, (shard, reply) => {
        gradients.accepted(shard, reply);
        if (!gatherNext) return;
        gatherNext = false;
        try {
          const { shards } = this.plan(step + 1);
          this.gathered = { step: step + 1, shards, data: this.gatherShardData(step + 1, shards) };
        } catch {
          // Not here, inside the dispatcher's bookkeeping: the next step gathers its samples again and
          // stops the run with the reason if it still cannot.
        }
      });
      gradients.dispatched(step, plan, dispatcher.assignedWorkers());
      const broadcast = performance.now();
      const outcomes = await round;
      const collected = performance.now();
      let applied: AppliedStep;
      try {
        applied = await gradients.finish(step, plan, outcomes);
      } catch (error) {
        if (!(error instanceof StepRedo)) throw error;
        telemetry.record({ type: 'reduction-redone', step, attempt, reason: error.message });
        if (attempt + 1 >= MAX_STEP_ATTEMPTS) {
          throw new CallosumError(
            ErrorCodes.COMPUTE_FAILED,
            `${stepLabel(step)}: the reduction failed ${MAX_STEP_ATTEMPTS} times (last: ${error.message}); stopping`,
          );
        }
        this.context.counters.redoneSteps += 1;
        continue;
      }
      const finished = performance.now();
      const { perWorker, spans } = perWorkerTimings(outcomes, started, collected);
      const { totals, learningRate, optimizerMs, peerBytes } = applied;
      return {
        ...stepEvent(
          state,
          epoch,
          totals,
          learningRate,
          totals.count / ((finished - started) / 1000),
          this.context.objective,
        ),
        workers: new Set(outcomes.map((outcome) => outcome.worker)).size,
        perWorker,
        updateMs: finished - collected,
        stepMs: finished - started,
        bytes: stepBytes(traffic.window, peerBytes),
        timeline: {
          prepareMs: prepared - started,
          broadcastMs: broadcast - prepared,
          // Everything between the last result and the applied step that is not the optimizer is the
          // reduction, so that the two add up to updateMs.
          reduceMs: finished - collected - optimizerMs,
          optimizerMs,
          workers: spans,
        },
      };
    }
  }

  /** Loss and metrics on the whole evaluation set with the current weights: every sample counted once. */
  get evaluates(): boolean {
    return this.context.evaluationSet !== undefined;
  }

  async evaluate(): Promise<BatchTotals> {
    const { state, dispatcher } = this.context;
    const evaluationSet = this.context.evaluationSet;
    if (evaluationSet === undefined) {
      throw new CallosumError(
        ErrorCodes.INTERNAL,
        'an evaluation was asked of a task without evaluation data',
      );
    }
    const round = this.evaluationRound++;
    const indices = Uint32Array.from({ length: evaluationSet.count }, (_, i) => i);
    const shards = evenShardRanges(indices.length, this.parts());
    const tasks = this.shardTasks(shards, (shard, { start, end }) => ({
      type: 'evaluate',
      round,
      shard,
      weightsVersion: state.step,
      ...samplesToWire(gatherSamples(evaluationSet, indices.subarray(start, end)), evaluationSet),
    }));
    const outcomes = await dispatcher.run<EvaluationReply>(RoundIds.evaluation(round), tasks);
    const totals = outcomes.reduce((sum, outcome) => addTotals(sum, outcome.result.totals), EMPTY_TOTALS);
    if (totals.count !== evaluationSet.count) {
      throw new CallosumError(
        ErrorCodes.COMPUTE_FAILED,
        `evaluation counted ${totals.count} of ${evaluationSet.count} evaluation samples`,
      );
    }
    return totals;
  }

  private parts(): number {
    return Math.max(1, this.context.membership.healthy().length);
  }

  /** How `step`'s batch is cut for the healthy workers. */
  private plan(step: number): StepPlan {
    return this.context.reduction.plan(this.context.state.batchIndices(step).length, this.parts());
  }

  /** The samples of each of the shards of `step`'s batch, as requests carry them. */
  private shardData(step: number, shards: readonly ShardRange[]): ShardData[] {
    const gathered = this.gathered;
    this.gathered = undefined;
    const same =
      gathered?.step === step &&
      gathered.shards.length === shards.length &&
      gathered.shards.every((range, i) => range.start === shards[i]?.start && range.end === shards[i]?.end);
    return same ? gathered.data : this.gatherShardData(step, shards);
  }

  private gatherShardData(step: number, shards: readonly ShardRange[]): ShardData[] {
    const { state, train } = this.context;
    const indices = state.batchIndices(step);
    return shards.map(({ start, end }) => {
      const samples = state.gatherTrainingSamples(train, indices.subarray(start, end), step);
      return { ...samplesToWire(samples, train), keys: keysToWire(samples) };
    });
  }

  /** Tasks for the given shards, each with the request `request` makes for it. */
  private shardTasks(
    shards: readonly ShardRange[],
    request: (shard: number, range: ShardRange) => ShardRequest,
  ): ShardTask[] {
    return shards.map((range, index) => ({
      index,
      part: range.part,
      count: range.end - range.start,
      request: request(index, range),
    }));
  }

  /**
   * In a run that synchronises BatchNormalization, the passes that find the global batch's statistics
   * and their adjoints before the step's gradient (batch-norm-sync.ts). Not needed for one shard: tfjs's
   * own BatchNormalization normalises the whole batch then.
   */
  private async synchroniseBatchNorm(
    step: number,
    plan: StepPlan,
    shardData: readonly ShardData[],
  ): Promise<SyncedStatistics | undefined> {
    const { batchNorm, dispatcher } = this.context;
    if (batchNorm === undefined || plan.shards.length < 2) return undefined;
    return batchNorm.synchronise(plan.samples, async (pass, known) => {
      const { kind, layer } = batchNorm.passOf(pass);
      const wire = syncedToWire(known);
      const tasks = this.shardTasks(plan.shards, (shard) => ({
        type: 'batch-norm',
        step,
        pass,
        kind,
        layer,
        shard,
        weightsVersion: step,
        ...(shardData[shard] as ShardData),
        ...wire,
      }));
      const outcomes = await dispatcher.run<BatchNormReply>(RoundIds.batchNorm(step, pass), tasks);
      return outcomes.map((outcome) => outcome.result);
    });
  }
}

/** Per worker: its samples and where its time went, and when it was sent its first shard and gave its last answer. */
function perWorkerTimings(
  outcomes: readonly ShardOutcome<StepReply>[],
  stepStartedAt: number,
  collectedAt: number,
): Pick<StepReport, 'perWorker'> & { spans: StepReport['timeline']['workers'] } {
  const byWorker = new Map<
    string,
    StepReport['perWorker'][number] & { sentAt: number; receivedAt: number }
  >();
  for (const { worker, result, startedAt, receivedAt } of outcomes) {
    const entry = byWorker.get(worker.id) ?? {
      id: worker.id,
      samples: 0,
      computeMs: 0,
      transferMs: 0,
      waitMs: 0,
      sentAt: startedAt,
      receivedAt,
    };
    const inside = result.timings.decodeMs + result.timings.computeMs;
    entry.samples += result.totals.count;
    entry.computeMs += inside;
    entry.transferMs += Math.max(0, receivedAt - startedAt - inside);
    entry.sentAt = Math.min(entry.sentAt, startedAt);
    entry.receivedAt = Math.max(entry.receivedAt, receivedAt);
    // Waiting for the others starts with its last answer (a worker may compute several shards).
    entry.waitMs = collectedAt - entry.receivedAt;
    byWorker.set(worker.id, entry);
  }
  const entries = [...byWorker.values()];
  return {
    perWorker: entries.map(({ sentAt, receivedAt, ...timings }) => timings),
    spans: entries.map(({ id, sentAt, receivedAt }) => ({
      id,
      sentMs: sentAt - stepStartedAt,
      receivedMs: receivedAt - stepStartedAt,
    })),
  };
}

/** Synchronised statistics as compute and batch-norm requests carry them (copies: the passes go on changing them). */
function syncedToWire({ statistics, adjoints, samples }: SyncedStatistics) {
  return {
    statistics: toWireTensor(Float32Array.from(statistics), [statistics.length]),
    adjoints: toWireTensor(Float32Array.from(adjoints), [adjoints.length]),
    samples,
  };
}
