import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { type LearningRateSchedule, learningRateAt } from './schedules.js';
import { callosumError } from './test-support.js';

const BASE = 0.1;

function ratesAt(schedule: LearningRateSchedule, steps: readonly number[]): number[] {
  return steps.map((step) => learningRateAt(BASE, schedule, step));
}

describe('learningRateAt', () => {
  it('keeps a constant schedule at the base rate', () => {
    expect(ratesAt({ kind: 'constant' }, [0, 1, 1000])).toEqual([BASE, BASE, BASE]);
  });

  it('ramps linearly over the warmup steps, from base / warmupSteps up to the base rate', () => {
    const rates = ratesAt({ kind: 'constant', warmupSteps: 4 }, [0, 1, 2, 3, 4, 50]);
    expect(rates).toEqual([0.025, 0.05, 0.075, 0.1, 0.1, 0.1].map((rate) => expect.closeTo(rate, 15)));
  });

  it('decays a step schedule by gamma at each boundary', () => {
    const rates = ratesAt({ kind: 'step', stepSize: 3, gamma: 0.5 }, [0, 2, 3, 5, 6, 9]);
    expect(rates).toEqual([0.1, 0.1, 0.05, 0.05, 0.025, 0.0125].map((rate) => expect.closeTo(rate, 15)));
  });

  it('counts step decay boundaries from the end of warmup', () => {
    const rates = ratesAt({ kind: 'step', stepSize: 3, gamma: 0.5, warmupSteps: 2 }, [0, 1, 2, 4, 5]);
    expect(rates).toEqual([0.05, 0.1, 0.1, 0.1, 0.05].map((rate) => expect.closeTo(rate, 15)));
  });

  it('follows half a cosine from the base rate to the minimum, then stays there', () => {
    const schedule: LearningRateSchedule = { kind: 'cosine', totalSteps: 100, minLearningRate: 0.02 };
    const [start, midpoint, end, after] = ratesAt(schedule, [0, 50, 100, 150]);
    expect(start).toBe(BASE);
    expect(midpoint).toBeCloseTo((BASE + 0.02) / 2, 15);
    expect(end).toBeCloseTo(0.02, 15);
    expect(after).toBeCloseTo(0.02, 15);
  });

  it('starts the cosine after warmup and ends it at totalSteps', () => {
    const schedule: LearningRateSchedule = { kind: 'cosine', totalSteps: 110, warmupSteps: 10 };
    const [lastWarmup, start, midpoint, end] = ratesAt(schedule, [9, 10, 60, 110]);
    expect(lastWarmup).toBeCloseTo(BASE, 15);
    expect(start).toBe(BASE);
    expect(midpoint).toBeCloseTo(BASE / 2, 15);
    expect(end).toBe(0);
  });
});

describe('learningRateAt rejects invalid input', () => {
  // One invalid input a row, spelled out in full: the rows look alike by design.
  const cases: [string, number, LearningRateSchedule, number, string][] = [
    ['a base rate of 0', 0, { kind: 'constant' }, 0, 'baseLearningRate must be a number > 0, got 0'],
    ['a negative step', BASE, { kind: 'constant' }, -1, 'step must be an integer >= 0, got -1'],
    ['a fractional step', BASE, { kind: 'constant' }, 1.5, 'step must be an integer >= 0, got 1.5'],
    [
      'negative warmup',
      BASE,
      { kind: 'constant', warmupSteps: -2 },
      0,
      'warmupSteps must be an integer >= 0, got -2',
    ],
    [
      'a stepSize of 0',
      BASE,
      { kind: 'step', stepSize: 0, gamma: 0.5 },
      0,
      'stepSize must be an integer >= 1, got 0',
    ],
    [
      'gamma above 1',
      BASE,
      { kind: 'step', stepSize: 10, gamma: 1.5 },
      0,
      'gamma must be a number in (0, 1], got 1.5',
    ],
    [
      'totalSteps inside warmup',
      BASE,
      { kind: 'cosine', totalSteps: 10, warmupSteps: 10 },
      0,
      'totalSteps must be an integer > warmupSteps (10), got 10',
    ],
    [
      'a minimum above the base rate',
      BASE,
      { kind: 'cosine', totalSteps: 100, minLearningRate: 0.2 },
      0,
      'minLearningRate must be a number in [0, 0.1], got 0.2',
    ],
    [
      'a missing required option',
      BASE,
      { kind: 'step', gamma: 0.5 } as LearningRateSchedule,
      0,
      'stepSize must be an integer >= 1, got undefined',
    ],
    [
      'an unknown option',
      BASE,
      { kind: 'cosine', totalSteps: 100, warmup: 5 } as LearningRateSchedule,
      0,
      'has no option "warmup"; options: kind, warmupSteps, totalSteps, minLearningRate',
    ],
  ];

  it.each(cases)('%s', (_label, base, schedule, step, message) => {
    expect(() => learningRateAt(base, schedule, step)).toThrow(
      callosumError(ErrorCodes.INVALID_ARGUMENT, `schedule "${schedule.kind}"`, message),
    );
  });

  it('rejects bad options already during warmup', () => {
    expect(() => learningRateAt(BASE, { kind: 'step', stepSize: 0, gamma: 0.5, warmupSteps: 5 }, 0)).toThrow(
      callosumError(ErrorCodes.INVALID_ARGUMENT, 'stepSize'),
    );
  });

  it('rejects an unknown kind with UNKNOWN_NAME, listing the kinds', () => {
    expect(() => learningRateAt(BASE, { kind: 'linear' } as unknown as LearningRateSchedule, 0)).toThrow(
      callosumError(ErrorCodes.UNKNOWN_NAME, 'unknown schedule kind "linear"; kinds: constant, step, cosine'),
    );
  });
});
