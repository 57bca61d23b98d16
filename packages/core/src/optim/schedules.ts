import { CallosumError, ErrorCodes } from '../errors.js';
import {
  closedInterval,
  NON_NEGATIVE_INTEGER,
  type NumberRange,
  POSITIVE,
  POSITIVE_INTEGER,
  rejectUnknownOptions,
  requireNumber,
} from './validation.js';

export const ScheduleKinds = {
  CONSTANT: 'constant',
  STEP: 'step',
  COSINE: 'cosine',
} as const;

interface Warmup {
  /**
   * Ramp the rate linearly over the first `warmupSteps` steps, from base / warmupSteps on step 0 up to the
   * base rate; the schedule itself starts after the ramp. Default 0 (no warmup).
   */
  readonly warmupSteps?: number;
}

export interface ConstantSchedule extends Warmup {
  readonly kind: typeof ScheduleKinds.CONSTANT;
}

/** Multiplies the rate by `gamma` every `stepSize` steps (counted after warmup). */
export interface StepSchedule extends Warmup {
  readonly kind: typeof ScheduleKinds.STEP;
  readonly stepSize: number;
  /** In (0, 1]. */
  readonly gamma: number;
}

/** Half a cosine from the base rate (at the end of warmup) down to `minLearningRate` at `totalSteps`. */
export interface CosineSchedule extends Warmup {
  readonly kind: typeof ScheduleKinds.COSINE;
  /** The step, counted from 0 and including warmup, from which on the rate stays at `minLearningRate`. */
  readonly totalSteps: number;
  /** In [0, base rate]. Default 0. */
  readonly minLearningRate?: number;
}

export type LearningRateSchedule = ConstantSchedule | StepSchedule | CosineSchedule;

const DECAY_FACTOR: NumberRange = {
  description: 'a number in (0, 1]',
  contains: (value) => value > 0 && value <= 1,
};

/**
 * The learning rate for `step` (the 0-based optimizer step). Throws INVALID_ARGUMENT on a bad value and
 * UNKNOWN_NAME on an unknown schedule kind.
 */
export function learningRateAt(
  baseLearningRate: number,
  schedule: LearningRateSchedule,
  step: number,
): number {
  const context = scheduleContext(schedule.kind);
  requireNumber(context, 'baseLearningRate', baseLearningRate, POSITIVE);
  requireNumber(context, 'step', step, NON_NEGATIVE_INTEGER);
  const warmupSteps = requireNumber(context, 'warmupSteps', schedule.warmupSteps ?? 0, NON_NEGATIVE_INTEGER);
  // Evaluated during warmup too, so that a bad spec fails on step 0 rather than when warmup ends.
  const scheduled = scheduledLearningRate(
    baseLearningRate,
    schedule,
    warmupSteps,
    Math.max(step - warmupSteps, 0),
  );
  return step < warmupSteps ? (baseLearningRate * (step + 1)) / warmupSteps : scheduled;
}

function scheduledLearningRate(
  baseLearningRate: number,
  schedule: LearningRateSchedule,
  warmupSteps: number,
  stepsAfterWarmup: number,
): number {
  const context = scheduleContext(schedule.kind);
  switch (schedule.kind) {
    case ScheduleKinds.CONSTANT:
      rejectUnknownOptions(context, schedule, ['kind', 'warmupSteps']);
      return baseLearningRate;
    case ScheduleKinds.STEP: {
      rejectUnknownOptions(context, schedule, ['kind', 'warmupSteps', 'stepSize', 'gamma']);
      const stepSize = requireNumber(context, 'stepSize', schedule.stepSize, POSITIVE_INTEGER);
      const gamma = requireNumber(context, 'gamma', schedule.gamma, DECAY_FACTOR);
      return baseLearningRate * gamma ** Math.floor(stepsAfterWarmup / stepSize);
    }
    case ScheduleKinds.COSINE: {
      rejectUnknownOptions(context, schedule, ['kind', 'warmupSteps', 'totalSteps', 'minLearningRate']);
      const totalSteps = requireNumber(context, 'totalSteps', schedule.totalSteps, {
        description: `an integer > warmupSteps (${warmupSteps})`,
        contains: (value) => Number.isSafeInteger(value) && value > warmupSteps,
      });
      const minLearningRate = requireNumber(
        context,
        'minLearningRate',
        schedule.minLearningRate ?? 0,
        closedInterval(0, baseLearningRate),
      );
      const progress = Math.min(stepsAfterWarmup / (totalSteps - warmupSteps), 1);
      return (
        minLearningRate + (baseLearningRate - minLearningRate) * 0.5 * (1 + Math.cos(Math.PI * progress))
      );
    }
    default:
      throw new CallosumError(
        ErrorCodes.UNKNOWN_NAME,
        `unknown schedule kind "${(schedule as { kind: unknown }).kind}"; ` +
          `kinds: ${Object.values(ScheduleKinds).join(', ')}`,
      );
  }
}

function scheduleContext(kind: string): string {
  return `schedule "${kind}"`;
}
