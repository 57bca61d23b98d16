import { CallosumError, ErrorCodes } from '../errors.js';
import { stepLabel } from './step-label.js';

/** A step whose loss or gradient came out NaN or Infinity wherever it was computed. */
export interface Divergence {
  /** The step's 0-based index (the message counts from 1). */
  readonly step: number;
  /** The learning rate the step would have applied. */
  readonly learningRate: number;
  /** What was not finite, e.g. "loss is Infinity". */
  readonly found: string;
  /** The task trained, named at the start of the message when given. */
  readonly task?: string | undefined;
  /** `found` already names a cause other than the weights (a wire dtype's range): no advice is added. */
  readonly explained?: boolean;
}

/**
 * TRAINING_DIVERGED, worded alike by trainLocal and the coordinator: the step, its learning rate and
 * what was found, then what to do. At the first step nothing has been applied yet, so the learning rate
 * cannot be the cause: the data or the loss is.
 */
export function trainingDiverged({ step, learningRate, found, task, explained }: Divergence): CallosumError {
  const advice = explained
    ? ''
    : step === 0
      ? '; at the first step, with the initial weights: look at the data (features of a huge magnitude, say) and the loss, not the learning rate'
      : '; lower the learning rate (learningRate, --lr)';
  return new CallosumError(
    ErrorCodes.TRAINING_DIVERGED,
    `${task === undefined ? '' : `task ${task}: `}training diverged at ${stepLabel(step)} (learning rate ${learningRate}): ${found}${advice}`,
  );
}
