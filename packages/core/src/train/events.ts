import type { Objective } from '../task/objective.js';
import type { BatchTotals } from './batch.js';
import type { TrainingState } from './training-state.js';

/** Reported after every optimizer step, by trainLocal and (extended) by the coordinator. */
export interface StepEvent {
  /** Steps completed, counting this one. */
  readonly step: number;
  readonly totalSteps: number;
  /** Epoch the step's batch came from (0-based). */
  readonly epoch: number;
  /** The batch's place in its epoch (0-based), whichever step the run was resumed from. */
  readonly batch: number;
  /** Mean loss and accuracy over this step's global batch (accuracy NaN when the task does not measure it). */
  readonly loss: number;
  readonly accuracy: number;
  /** Mean over this step's global batch of each of the task's other metrics, by name. */
  readonly metrics: Readonly<Record<string, number>>;
  readonly learningRate: number;
  readonly samplesPerSecond: number;
  /** Whether this step was the last of its epoch (or of the run). */
  readonly endsEpoch: boolean;
}

/** Reported by trainLocal after every epoch (the last one may be cut short by maxSteps). */
export interface EpochEvent {
  readonly epoch: number;
  /** Over the epoch's training batches, weighted by samples: the mean loss. */
  readonly loss: number;
  /** Likewise the accuracy; NaN when the task does not measure it. */
  readonly accuracy: number;
  /** Likewise every metric by name, accuracy included when measured (as `testMetrics`). */
  readonly metrics: Readonly<Record<string, number>>;
  /** The evaluation after the epoch (the test split, else the validation split); NaN without one. */
  readonly testLoss: number;
  readonly testAccuracy: number;
  /** Every metric of that evaluation by name; empty without one. */
  readonly testMetrics: Readonly<Record<string, number>>;
}

/** The step event for a step just applied to `state`. */
export function stepEvent(
  state: TrainingState,
  epoch: number,
  reduced: BatchTotals,
  learningRate: number,
  samplesPerSecond: number,
  objective: Pick<Objective, 'measuresAccuracy' | 'metricNames'>,
): StepEvent {
  return {
    step: state.step,
    totalSteps: state.totalSteps,
    epoch,
    // The state has counted the step already: its batch is the one before the position it is at now.
    batch: state.sampler.positionAtStep(state.step - 1).batchIndex,
    loss: reduced.lossSum / reduced.count,
    accuracy: objective.measuresAccuracy ? reduced.correct / reduced.count : Number.NaN,
    metrics: Object.fromEntries(
      objective.metricNames.map((name, index) => [
        name,
        (reduced.metricSums[index] ?? Number.NaN) / reduced.count,
      ]),
    ),
    learningRate,
    samplesPerSecond,
    endsEpoch: state.endedEpoch(epoch),
  };
}
