import { join } from 'node:path';
import {
  CallosumError,
  type ErrorCode,
  ErrorCodes,
  type LayersModel,
  type ParameterLayout,
  saveModel,
  type TrainingState,
  writeFlatWeights,
} from '@callosum/core';
import type { ShardDispatcher } from '../dispatch/shard-dispatcher.js';
import type { RunSummary } from '../options.js';
import type { RingReduction } from '../ring/ring-reduction.js';
import type { Scope } from '../scope.js';
import type { RunCounters } from '../telemetry/counters.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { Refusals } from '../transport/refusals.js';
import { describeError } from '../workers/connection.js';
import type { WorkerRegistry } from '../workers/registry.js';
import type { WorkerPool } from '../workers/worker-pool.js';
import { type RunDirectory, RunFiles } from './run-directory.js';
import type { StartQuorum } from './start-quorum.js';
import type { TrainingLoop } from './training-loop.js';

export interface RunLifecycleContext {
  readonly outDir: string;
  readonly runDirectory: RunDirectory;
  readonly state: TrainingState;
  readonly model: LayersModel;
  readonly layout: ParameterLayout;
  readonly quorum: StartQuorum;
  readonly loop: TrainingLoop;
  readonly membership: WorkerRegistry;
  readonly dispatcher: Pick<ShardDispatcher, 'abort' | 'pendingOn' | 'waitingForWorker'>;
  readonly counters: RunCounters;
  readonly workers: Pick<WorkerPool, 'backends' | 'closeAll'>;
  readonly refusals: Pick<Refusals, 'authFailures' | 'refusedConnections'>;
  readonly telemetry: Telemetry;
  readonly metricsPath: string;
  /** A ring run's reduction under way, and which workers it waits for (for /status). */
  readonly reduction: (() => RingReduction['waitingFor']) | undefined;
  /** Brings `state`'s weights up to its step (a ring run's, from a replica), before they are saved. */
  readonly currentState: () => Promise<void>;
  /** Everything to release when the run ends, after the workers were told. */
  readonly scope: Scope;
  readonly log: (line: string) => void;
}

/**
 * A run from start to end: waits for the start quorum, trains, saves the model and the summary; on
 * any stop, checkpoints a run in progress; either way tells the workers, then releases everything.
 */
export class RunLifecycle {
  private stopRequested: CallosumError | undefined;
  /** Set once the run has completed or stopped: a write failing after that no longer stops it. */
  #settled = false;
  /** Resolves when the run completes; rejects with the reason it stopped. */
  readonly result: Promise<RunSummary>;

  constructor(private readonly context: RunLifecycleContext) {
    const { telemetry, state, loop, log } = context;
    this.result = this.run().then(
      async (summary) => {
        this.#settled = true;
        await this.shutdown(ErrorCodes.RUN_ENDED, 'training complete');
        return summary;
      },
      async (error: unknown) => {
        this.#settled = true;
        const { code, message } = describeError(error);
        telemetry.record({ type: 'stopped', code, reason: message, step: state.step });
        // A new run that trained no step leaves its directory as it found it (the log says why it stopped).
        const unstarted = state.step === 0 && loop.checkpointedStep === undefined;
        // Stopped (a signal, no workers left, a full disk): keep the progress so `--resume` continues
        // from here. On a full disk this write fails too (and leaves nothing behind): the newest
        // checkpoint written before is then where `--resume` continues.
        if (loop.midRun && !unstarted) {
          await loop.saveCheckpoint().catch((failure: unknown) => {
            log(
              `coordinator: could not checkpoint step ${state.step}: ${failure instanceof Error ? failure.message : String(failure)}`,
            );
            log(`coordinator: ${resumePoint(loop.checkpointedStep, state.step)}`);
          });
        }
        // The workers print the reason as their own: say whose file could not be written.
        await this.shutdown(
          code,
          code === ErrorCodes.WRITE_FAILED ? `on the coordinator: ${message}` : message,
        );
        if (unstarted) {
          await context.runDirectory.discardUnstarted().then(
            () => log(`coordinator: no step was trained: removed the run's files from ${context.outDir}`),
            (failure: unknown) =>
              log(
                `coordinator: could not remove the files of a run that trained no step: ${String(failure)}`,
              ),
          );
        }
        throw error;
      },
    );
  }

  /**
   * What GET /status shows: where the run is, each worker with its pending shards, the counters, and
   * the bytes of the latest step (null before the first).
   */
  status() {
    const { runDirectory, loop, state, membership, dispatcher, counters } = this.context;
    return {
      runId: runDirectory.runId,
      phase: loop.phase,
      step: state.step,
      totalSteps: state.totalSteps,
      epoch: state.position.epoch,
      workers: membership
        .all()
        .map((worker) => ({ ...worker.info, pendingShards: dispatcher.pendingOn(worker) })),
      ...(this.context.reduction === undefined ? {} : { reduction: this.context.reduction() ?? null }),
      // While every worker is gone: how long the step has waited for one, and how long it will in all.
      waitingForWorker: dispatcher.waitingForWorker() ?? null,
      ...counters,
      lastStepBytes: loop.lastStepBytes ?? null,
    };
  }

  /**
   * Ends training after the step in progress as if the run were complete: the model and the summary
   * are saved and the workers told RUN_ENDED. For early stopping; a stop to resume later is `stop`.
   */
  finish(reason: string): void {
    this.context.log(`coordinator: finishing early at step ${this.context.state.step}: ${reason}`);
    this.context.loop.finishEarly();
  }

  /** Saves the model with the current weights into `dir` (between steps, e.g. from onEvaluation). */
  async saveModelTo(dir: string): Promise<void> {
    const { model, state, layout } = this.context;
    await this.context.currentState();
    writeFlatWeights(model, state.weights, layout);
    await saveModel(model, dir);
  }

  /** Ends the run early with COORDINATOR_STOPPING; resolves once it has shut down. */
  async stop(reason: string): Promise<void> {
    this.stopRequested = new CallosumError(ErrorCodes.COORDINATOR_STOPPING, reason);
    this.context.dispatcher.abort(this.stopRequested);
    this.context.quorum.wake();
    await this.result.catch(() => undefined);
  }

  /**
   * A file the run streams its record into (metrics.jsonl, the `--trace` file) could not be written (a
   * full disk): the run stops with `error` (WRITE_FAILED, naming the file), as a stop does: it
   * checkpoints, tells the workers and ends with the reason. Going on would leave the run's record with
   * a hole, or a half line, and nobody told; metrics.jsonl is what `callosum report` and every reader
   * of the run rely on, so the run stops while its newest checkpoint is intact, and `--resume` continues
   * it, recorded without a gap, once the file can be written again. Once training has finished (the
   * model and summary being saved) the run is complete and stays so: the failure is then a warning.
   */
  writeFailed(error: CallosumError): void {
    if (this.#settled || this.context.loop.phase === 'finished') {
      this.context.log(`coordinator: warning: ${error.message}; the run's record there is incomplete`);
      return;
    }
    if (this.stopRequested !== undefined) return;
    this.stopRequested = error;
    this.context.dispatcher.abort(error);
    this.context.quorum.wake();
  }

  private async run(): Promise<RunSummary> {
    const { state, model, layout, loop, membership, counters, workers, refusals, telemetry } = this.context;
    const started = performance.now();
    await this.context.quorum.reached(() => this.stopRequested);
    const totals = await loop.train(() => this.stopRequested);
    await this.context.currentState();
    writeFlatWeights(model, state.weights, layout);
    const modelDir = join(this.context.outDir, RunFiles.MODEL);
    await saveModel(model, modelDir);
    const summary: RunSummary = {
      testAccuracy: totals.testAccuracy,
      testLoss: totals.testLoss,
      testMetrics: totals.testMetrics,
      epochs: state.step / state.sampler.batchesPerEpoch,
      steps: state.step,
      workers: membership.peakHealthy,
      samplesPerSecond: totals.trainedSamples / (totals.trainingMs / 1000),
      backend: workers.backends.join(','),
      modelDir,
      metricsFile: this.context.metricsPath,
      ...counters,
      authFailures: refusals.authFailures,
      refusedConnections: refusals.refusedConnections,
      seconds: (performance.now() - started) / 1000,
      bytesPerStep: totals.bytesPerStep,
    };
    telemetry.record({ type: 'summary', ...summary });
    await this.context.runDirectory.recordSummary(summary);
    return summary;
  }

  private async shutdown(code: ErrorCode, reason: string): Promise<void> {
    // Let the shutdown frames drain (a closing handshake), but never wait long for a stuck peer; and
    // clear that wait, which would otherwise keep the process alive for its full length.
    let giveUp: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.context.workers.closeAll(code, reason),
        new Promise((resolve) => {
          giveUp = setTimeout(resolve, 2_000);
        }),
      ]);
    } finally {
      clearTimeout(giveUp);
      await this.context.scope.close();
    }
  }
}

/** Where a resume continues from when the step a run stopped at could not be checkpointed. */
function resumePoint(checkpointed: number | undefined, stoppedAt: number): string {
  if (checkpointed === undefined) return 'no checkpoint was written: the run cannot be resumed';
  if (checkpointed === stoppedAt) return `a resume continues from step ${stoppedAt}, whose checkpoint exists`;
  return (
    `a resume continues from step ${checkpointed}, the newest checkpoint ` +
    `(${stoppedAt - checkpointed === 1 ? 'the step after it is' : `the ${stoppedAt - checkpointed} steps after it are`} trained again)`
  );
}
