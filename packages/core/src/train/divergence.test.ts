import '../backends/cpu.js';
import { describe, expect, it } from 'vitest';
import { isCallosumError } from '../errors.js';
import { defineTask } from '../task/define-task.js';
import { taskFromDefinition } from '../task/module-task.js';
import * as tf from '../tf.js';
import { trainingDiverged } from './divergence.js';
import { randomGenerator } from './test-support.js';
import { trainLocal } from './train-local.js';

describe('trainingDiverged', () => {
  it('names the step from 1, the learning rate and the task, and says to lower the learning rate', () => {
    const error = trainingDiverged({ step: 6, learningRate: 10, found: 'loss is Infinity', task: 'line' });
    expect(isCallosumError(error, 'TRAINING_DIVERGED')).toBe(true);
    expect(error.message).toBe(
      'task line: training diverged at step 7 (learning rate 10): loss is Infinity; lower the learning rate (learningRate, --lr)',
    );
  });

  it('at the first step points at the data, and adds no advice to a cause already named', () => {
    expect(trainingDiverged({ step: 0, learningRate: 0.1, found: 'loss is NaN' }).message).toBe(
      'training diverged at step 1 (learning rate 0.1): loss is NaN; at the first step, with the initial weights: look at the data (features of a huge magnitude, say) and the loss, not the learning rate',
    );
    expect(
      trainingDiverged({
        step: 3,
        learningRate: 0.1,
        found: 'gradient[0] is Infinity (float16)',
        explained: true,
      }).message,
    ).toBe('training diverged at step 4 (learning rate 0.1): gradient[0] is Infinity (float16)');
  });
});

/** A linear regression task named "line": 4 features in [-1, 1) times `scale`. */
function lineTask(scale: number) {
  const next = randomGenerator(5);
  const xs = Array.from({ length: 64 * 4 }, () => (next() * 2 - 1) * scale);
  const ys = Array.from({ length: 64 }, (_, i) => xs[i * 4]! - xs[i * 4 + 1]!);
  return taskFromDefinition(
    defineTask({
      model: () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 1 })] }),
      data: () => ({ train: { xs: { values: xs, shape: [64, 4] }, ys: { values: ys, shape: [64, 1] } } }),
      loss: 'meanSquaredError',
      optimizer: 'sgd',
    }),
    'line',
  );
}

describe('trainLocal on a diverging run', () => {
  it('stops with TRAINING_DIVERGED naming the step, learning rate and task, with advice', async () => {
    const error = await trainLocal({
      task: lineTask(1),
      backend: 'cpu',
      learningRate: 10,
      epochs: 100,
      batchSize: 16,
      evaluate: false,
    }).catch((reason: unknown) => reason);
    expect(isCallosumError(error, 'TRAINING_DIVERGED')).toBe(true);
    expect((error as Error).message).toMatch(
      /^task line: training diverged at step \d+ \(learning rate 10\): (loss|gradient\[\d+\]) is -?(Infinity|NaN); lower the learning rate \(learningRate, --lr\)$/,
    );
    expect(Number((error as Error).message.match(/step (\d+)/)?.[1])).toBeGreaterThan(1);
  });

  it('at the first step, says to look at the data', async () => {
    const error = await trainLocal({
      task: lineTask(1e30),
      backend: 'cpu',
      learningRate: 0.001,
      maxSteps: 5,
      evaluate: false,
    }).catch((reason: unknown) => reason);
    expect(isCallosumError(error, 'TRAINING_DIVERGED')).toBe(true);
    expect((error as Error).message).toMatch(
      /^task line: training diverged at step 1 \(learning rate 0\.001\): loss is Infinity; at the first step, with the initial weights: look at the data/,
    );
  });
});
