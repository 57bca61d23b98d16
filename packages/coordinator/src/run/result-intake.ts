import {
  assertFiniteShard,
  type BatchTotals,
  CallosumError,
  type ErrorCode,
  ErrorCodes,
  floatsFromWire,
  type GradientResult,
  isCallosumError,
  type TrainingState,
  trainingDiverged,
  type WireDtype,
  type WorkerMessage,
  wireOverflowHint,
} from '@callosum/core';
import { type RoundId, RoundIds } from '../dispatch/round-id.js';
import type { ShardDispatcher } from '../dispatch/shard-dispatcher.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { describeError, type WorkerConnection } from '../workers/connection.js';
import type { WorkerRegistry } from '../workers/registry.js';
import type { ResultHandlers } from '../workers/worker-pool.js';
import type { BatchNormReply, BatchNormSync } from './batch-norm-sync.js';
import { DivergenceWatch } from './divergence.js';
import type { StepReply } from './gradient-path.js';
import type { EvaluationReply } from './rounds.js';

export interface ResultIntakeContext {
  readonly state: TrainingState;
  readonly membership: WorkerRegistry;
  readonly dispatcher: ShardDispatcher;
  readonly telemetry: Telemetry;
  readonly parameterCount: number;
  /** How many metric sums (the task's metrics other than accuracy) each result must carry. */
  readonly metricCount: number;
  /** The dtype gradients travel in; an Infinity in a float16 one may be a value beyond its range. */
  readonly wireDtype: WireDtype;
  /** A run whose steps synchronise BatchNormalization: what its passes' results must look like. */
  readonly batchNorm: BatchNormSync | undefined;
}

/**
 * Where a worker's results enter the run: gradients and evaluations are validated and handed to the
 * dispatcher, unusable ones (and failures) are rejected so their shard is redone elsewhere, and a
 * non-finite gradient on every worker stops the run as diverged. The dispatcher tells the pool which
 * results were accepted and which failures were the worker's; judging the worker is the pool's.
 */
export class ResultIntake implements ResultHandlers {
  private readonly divergence = new DivergenceWatch();

  constructor(private readonly context: ResultIntakeContext) {}

  gradient(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'gradient' }>): void {
    const { parameterCount, wireDtype } = this.context;
    this.stepResult(worker, message, () => {
      const gradient: GradientResult = {
        gradient: floatsFromWire(message.gradient, wireDtype, [parameterCount]),
        lossSum: message.lossSum,
        correct: message.correct,
        metricSums: message.metricSums,
        count: message.count,
      };
      try {
        assertFiniteShard(gradient, message.shard, parameterCount);
      } catch (error) {
        if (!isCallosumError(error, ErrorCodes.NON_FINITE)) throw error;
        throw new CallosumError(
          ErrorCodes.NON_FINITE,
          error.message + wireOverflowHint(wireDtype, gradient.gradient),
        );
      }
      return gradient;
    });
  }

  /** Ring: a shard computed, its gradient kept on the worker for the reduction among the workers. */
  computed(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'computed' }>): void {
    const { lossSum, correct, metricSums, count } = message;
    this.stepResult(worker, message, () => ({ lossSum, correct, metricSums, count }));
  }

  /** A training shard's result: its totals (and gradient) read by `read`, then checked and offered. */
  private stepResult(
    worker: WorkerConnection,
    message: Extract<WorkerMessage, { type: 'gradient' | 'computed' }>,
    read: () => BatchTotals,
  ): void {
    this.offer(worker, RoundIds.step(message.step), message, (): StepReply => {
      const totals = read();
      const problem = totalsProblem(message, this.context.metricCount);
      if (problem !== undefined) throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, problem);
      return { totals, timings: message.timings };
    });
  }

  /** A shard's result of a synchronised BatchNormalization pass. */
  batchNormResult(
    worker: WorkerConnection,
    message: Extract<WorkerMessage, { type: 'batch-norm-result' }>,
  ): void {
    const { batchNorm } = this.context;
    this.offer(worker, RoundIds.batchNorm(message.step, message.pass), message, (): BatchNormReply => {
      if (batchNorm === undefined) {
        throw new CallosumError(
          ErrorCodes.MALFORMED_MESSAGE,
          'a BatchNormalization pass in a run that does not synchronise BatchNormalization',
        );
      }
      // One dimension: a tensor of another shape is malformed, whatever its length.
      const values = floatsFromWire(message.values, 'float32', [message.values.shape[0] ?? 0]);
      const problem = batchNorm.problem(message.pass, values, message.elements, message.count);
      if (problem !== undefined) throw new CallosumError(problem.code, problem.reason);
      return { values, elements: message.elements, timings: message.timings };
    });
  }

  /**
   * A step's result for one shard of `round`, as `read` reads and checks it (throwing what is wrong),
   * offered to the dispatcher; one that cannot be used is rejected, so its shard is redone.
   */
  private offer<R>(
    worker: WorkerConnection,
    round: RoundId,
    { step, shard, count }: { step: number; shard: number; count: number },
    read: () => R,
  ): void {
    const { dispatcher, telemetry } = this.context;
    let reply: R;
    try {
      reply = read();
    } catch (error) {
      const { code, message: reason } = describeError(error);
      const pass = round.kind === 'batch-norm' ? { pass: round.pass } : {};
      telemetry.record({ type: 'rejected-gradient', worker: worker.id, step, shard, ...pass, code });
      this.unusableResult(worker, round, step, shard, code, reason);
      return;
    }
    if (!dispatcher.accept(round, shard, worker, count, reply)) {
      telemetry.record({ type: 'discarded-message', worker: worker.id, step, shard });
    }
  }

  evaluation(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'evaluation' }>): void {
    const { dispatcher, telemetry } = this.context;
    const round = RoundIds.evaluation(message.round);
    const problem = totalsProblem(message, this.context.metricCount);
    if (problem !== undefined) {
      telemetry.record({
        type: 'rejected-evaluation',
        worker: worker.id,
        round: message.round,
        shard: message.shard,
      });
      dispatcher.reject(round, message.shard, worker, {
        code: ErrorCodes.MALFORMED_MESSAGE,
        reason: problem,
      });
      return;
    }
    const totals = {
      lossSum: message.lossSum,
      correct: message.correct,
      metricSums: message.metricSums,
      count: message.count,
    };
    dispatcher.accept<EvaluationReply>(round, message.shard, worker, message.count, {
      totals,
      timings: message.timings,
    });
  }

  /** A worker reports it could not compute a shard: the shard is redone elsewhere. */
  failure(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'failure' }>): void {
    const { dispatcher } = this.context;
    if (message.shard === undefined) return;
    // The schema admits only the codes of the table.
    const problem = { code: message.code as ErrorCode, reason: `${message.code}: ${message.message}` };
    if (message.round !== undefined) {
      dispatcher.reject(RoundIds.evaluation(message.round), message.shard, worker, problem);
      return;
    }
    if (message.step === undefined) return;
    const round =
      message.pass === undefined
        ? RoundIds.step(message.step)
        : RoundIds.batchNorm(message.step, message.pass);
    if (message.code === ErrorCodes.NON_FINITE) {
      this.unusableResult(worker, round, message.step, message.shard, message.code, message.message);
      return;
    }
    dispatcher.reject(round, message.shard, worker, problem);
  }

  /**
   * A step's result (a gradient, or a BatchNormalization pass's) that must not be used. Non-finite on
   * every worker, the run has diverged and stops; otherwise the shard is redone (a non-finite one never
   * on the same worker in this step).
   */
  private unusableResult(
    worker: WorkerConnection,
    round: RoundId,
    step: number,
    shard: number,
    code: ErrorCode,
    reason: string,
  ): void {
    const { state, membership, dispatcher } = this.context;
    const nonFinite = code === ErrorCodes.NON_FINITE;
    if (nonFinite && step === state.step) {
      const computing = membership
        .all()
        .filter((member) => member.state === 'healthy' || member.state === 'suspect');
      if (
        this.divergence.nonFinite(
          step,
          worker.id,
          computing.map((member) => member.id),
        )
      ) {
        const wireCause = this.wireCause(reason);
        dispatcher.abort(
          trainingDiverged({
            step,
            learningRate: state.learningRate,
            found: `non-finite gradient/loss on every worker${wireCause}`,
            explained: wireCause !== '',
          }),
        );
        return;
      }
    }
    dispatcher.reject(round, shard, worker, { code, reason }, nonFinite);
  }

  /**
   * In a run whose gradients travel in 16 bits, every worker's Infinity may be an overflow of the wire
   * dtype rather than divergence: the last reason says which (the reference worker names the value).
   */
  private wireCause(reason: string): string {
    return this.context.wireDtype === 'float32' ? '' : `: ${reason}`;
  }
}

/**
 * Why a result's totals cannot be used, if they cannot. (The loss and accuracy are finite: the codec
 * refuses a frame holding a non-finite number. The metric sums may be NaN or ±Infinity, as a task's
 * metric may be: they are added up and reported as they are, and never touch the weights.)
 */
function totalsProblem(totals: BatchTotals, metricCount: number): string | undefined {
  if (totals.correct > totals.count) return `${totals.correct} correct of ${totals.count}`;
  return totals.metricSums.length === metricCount
    ? undefined
    : `${totals.metricSums.length} metric sums, the task has ${metricCount}`;
}
