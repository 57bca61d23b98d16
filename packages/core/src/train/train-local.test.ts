import { describe, expect, it } from 'vitest';
import { callosumError } from '../optim/test-support.js';
import { type TrainLocalOptions, trainLocal } from './train-local.js';

describe('trainLocal', () => {
  it.each([
    [{ model: { name: 'mlp' }, epochs: 1, steps: 5 }, 'has no option "steps" (did you mean "maxSteps"?)'],
    [{ model: { name: 'mlp' }, lr: 0.1 }, 'has no option "lr" (did you mean "learningRate"?)'],
    [{ model: { name: 'mlp' }, evalute: false }, 'has no option "evalute" (did you mean "evaluate"?)'],
  ])(
    'refuses an option it does not have (it would be dropped, and its default trained): %o',
    async (options, problem) => {
      await expect(trainLocal(options as unknown as TrainLocalOptions)).rejects.toThrow(
        callosumError(
          'INVALID_ARGUMENT',
          `trainLocal ${problem}; options: model, epochs, batchSize, optimizer, learningRate, schedule, seed, maxShift, maxSteps, microBatchSize, batchNorm, task, backend, evaluate, outDir, onStep, onEpoch, dataDir, dataset`,
        ),
      );
    },
  );
});
