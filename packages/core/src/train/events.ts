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

export interface EpochEvent {
  readonly epoch: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
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
