import { type BatchTotals, type Evaluation, type TrainingState, writeCheckpoint } from '@callosum/core';
import type { EvaluationReport, StepReport } from '../options.js';
import type { RunCounters } from '../telemetry/counters.js';
import { addStepBytes, meanStepBytes, NO_BYTES, type StepBytes } from '../telemetry/step-bytes.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { ResumedEvaluation } from './resumed-evaluation.js';
import type { Rounds } from './rounds.js';

export type RunPhase = 'waiting' | 'training' | 'evaluating' | 'finished';

export interface TrainingLoopContext {
  readonly state: TrainingState;
  readonly rounds: Rounds;
  readonly counters: RunCounters;
  readonly telemetry: Telemetry;
  readonly checkpointDir: string;
  readonly checkpointEverySteps: number;
  readonly keepCheckpoints: number;
  readonly onStep: ((report: StepReport) => void | Promise<void>) | undefined;
  readonly onEvaluation: ((report: EvaluationReport) => void | Promise<void>) | undefined;
  /** The figures of an evaluation's totals, by the task's objective. */
  readonly evaluationOf: (totals: BatchTotals) => Evaluation;
  /** Brings `state`'s weights and optimizer up to its step (a ring run's, from a replica). */
  readonly currentState: () => Promise<void>;
  /**
   * A resumed run whose checkpoint's step ended an epoch: that epoch's evaluation, if it was recorded,
   * else the epoch, whose evaluation is done before the first step.
   */
  readonly resumedEvaluation: ResumedEvaluation | undefined;
  /** The step of the newest checkpoint in the run directory: a resumed run's; undefined for a new run. */
  readonly checkpointedStep: number | undefined;
  readonly log: (line: string) => void;
}

/** What the loop measured, for the run summary. */
export interface TrainingTotals {
  readonly trainingMs: number;
  readonly trainedSamples: number;
  /** NaN without an evaluation (a resumed run's: the one its checkpoint's step had, if it had one). */
  readonly testLoss: number;
  readonly testAccuracy: number;
  readonly testMetrics: Readonly<Record<string, number>>;
  /** The mean of each step's bytes over this process's steps. */
  readonly bytesPerStep: StepBytes;
}

/**
 * The training loop: step after step until the run is finished, a checkpoint every so many steps and
 * at each epoch end, and an evaluation of the whole test set after each epoch.
 */
export class TrainingLoop {
  #phase: RunPhase = 'waiting';
  #finishRequested = false;
  #lastStepBytes: StepBytes | undefined;
  #checkpointedStep: number | undefined;

  constructor(private readonly context: TrainingLoopContext) {
    this.#checkpointedStep = context.checkpointedStep;
  }

  get phase(): RunPhase {
    return this.#phase;
  }

  /** What the latest step moved over the wire; undefined before the first. */
  get lastStepBytes(): StepBytes | undefined {
    return this.#lastStepBytes;
  }

  /** Ends training after the step in progress, as if the run were complete (e.g. early stopping). */
  finishEarly(): void {
    this.#finishRequested = true;
  }

  /** Trains to the end; `stopped` is checked before each step. */
  async train(stopped: () => Error | undefined): Promise<TrainingTotals> {
    const { state, rounds, counters, telemetry } = this.context;
    let trainingMs = 0;
    let trainedSamples = 0;
    let steps = 0;
    let stepBytes = NO_BYTES;
    const resumed = this.context.resumedEvaluation;
    let last: Evaluation | undefined = resumed?.recorded;
    this.#phase = 'training';
    if (resumed !== undefined && resumed.recorded === undefined) {
      const stop = stopped();
      if (stop) throw stop;
      this.context.log(
        `coordinator: the evaluation after epoch ${resumed.epoch + 1} (step ${state.step}) was not recorded ` +
          'before the run stopped: doing it now',
      );
      last = await this.evaluate(resumed.epoch);
    }
    while (!state.finished && !this.#finishRequested) {
      const stop = stopped();
      if (stop) throw stop;
      const report = await rounds.trainStep();
      trainingMs += report.stepMs;
      trainedSamples += report.perWorker.reduce((sum, worker) => sum + worker.samples, 0);
      steps += 1;
      stepBytes = addStepBytes(stepBytes, report.bytes);
      this.#lastStepBytes = report.bytes;
      telemetry.record({ type: 'step', ...report, ...counters });
      await this.context.onStep?.(report);
      const epochEnded = state.endedEpoch(report.epoch);
      if (epochEnded || state.step % this.context.checkpointEverySteps === 0) await this.saveCheckpoint();
      if (epochEnded && rounds.evaluates) {
        // A stop asked for during the step stops here, not after a whole evaluation (or, after the last
        // step, never): the checkpoint is written, and a resumed run does the evaluation its step owes.
        const stop = stopped();
        if (stop) throw stop;
        last = await this.evaluate(report.epoch);
      }
    }
    this.#phase = 'finished';
    return {
      trainingMs,
      trainedSamples,
      testLoss: last?.loss ?? Number.NaN,
      testAccuracy: last?.accuracy ?? Number.NaN,
      testMetrics: last?.metrics ?? {},
      bytesPerStep: meanStepBytes(stepBytes, steps),
    };
  }

  /** Whether stopping now leaves progress worth a checkpoint (training started, not finished). */
  get midRun(): boolean {
    return this.#phase === 'training' || this.#phase === 'evaluating';
  }

  /** The step of the newest checkpoint written for the run (by this process or, resumed, before); undefined if none. */
  get checkpointedStep(): number | undefined {
    return this.#checkpointedStep;
  }

  /** The state is always at a step boundary (steps apply atomically), so any moment is a safe one. */
  async saveCheckpoint(): Promise<void> {
    const { state, checkpointDir, keepCheckpoints, telemetry } = this.context;
    await this.context.currentState();
    const path = await writeCheckpoint(checkpointDir, state.checkpoint(), keepCheckpoints);
    this.#checkpointedStep = state.step;
    telemetry.record({ type: 'checkpoint', step: state.step, path });
  }

  /** Evaluates the current weights on the whole evaluation set, after the last step of `epoch`, and records it. */
  private async evaluate(epoch: number): Promise<Evaluation> {
    const { state, rounds, telemetry } = this.context;
    this.#phase = 'evaluating';
    const evaluationStarted = performance.now();
    const totals = await rounds.evaluate();
    const evaluated = this.context.evaluationOf(totals);
    const evaluation = {
      epoch,
      step: state.step,
      testLoss: evaluated.loss,
      testAccuracy: evaluated.accuracy ?? Number.NaN,
      testMetrics: evaluated.metrics,
      count: totals.count,
      evaluationMs: performance.now() - evaluationStarted,
    };
    telemetry.record({ type: 'evaluation', ...evaluation });
    await this.context.onEvaluation?.(evaluation);
    this.#phase = 'training';
    return evaluated;
  }
}
