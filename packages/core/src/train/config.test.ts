import '../backends/cpu.js';
import { describe, expect, it } from 'vitest';
import { isCallosumError } from '../errors.js';
import { callosumError } from '../optim/test-support.js';
import * as tf from '../tf.js';
import { DEFAULT_TRAINING_CONFIG, resolveTrainingConfig, trainingOptionsSchema } from './config.js';

describe('training options', () => {
  it('default every option that is not set (undefined counts as not set), and keep those that are', () => {
    expect(resolveTrainingConfig({})).toEqual(DEFAULT_TRAINING_CONFIG);
    expect(trainingOptionsSchema.parse({})).toEqual(DEFAULT_TRAINING_CONFIG);
    expect(resolveTrainingConfig({ batchSize: undefined, epochs: 3, microBatchSize: 32 })).toEqual({
      ...DEFAULT_TRAINING_CONFIG,
      epochs: 3,
      microBatchSize: 32,
    });
  });

  it("take the optimizer by name, as a task's and --optimizer's", () => {
    expect(resolveTrainingConfig({ optimizer: 'sgd' }).optimizer).toEqual({ name: 'sgd' });
    expect(resolveTrainingConfig({ optimizer: { name: 'momentum', momentum: 0.5 } }).optimizer).toEqual({
      name: 'momentum',
      momentum: 0.5,
    });
  });

  it('refuse a micro-batch larger than the global batch, naming the field', () => {
    expect(() => resolveTrainingConfig({ batchSize: 64, microBatchSize: 65 })).toThrow(
      'training config: microBatchSize (at most the global batch size) must be an integer in 1..64, got 65',
    );
    expect(resolveTrainingConfig({ batchSize: 64, microBatchSize: 64 }).microBatchSize).toBe(64);
  });

  it('refuse invalid values with INVALID_ARGUMENT, naming the field and the value', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ batchSize: 0 }, /batchSize must be an integer >= 1, got 0/],
      [{ batchSize: -64 }, /batchSize must be an integer >= 1, got -64/],
      [{ epochs: 1.5 }, /epochs must be an integer >= 1, got 1\.5/],
      [{ learningRate: 0 }, /learningRate must be a finite number > 0, got 0/],
      [{ learningRate: Number.NaN }, /learningRate must be a finite number > 0, got NaN/],
      [{ learningRate: Number.POSITIVE_INFINITY }, /learningRate must be .*, got Infinity/],
      [{ learningRate: '0.1' }, /learningRate must be .*, got "0\.1" \(a string\)$/],
      [{ epochs: '3' }, /epochs must be an integer >= 1, got "3" \(a string\)$/],
      [{ seed: true }, /seed must be an integer in 0\.\.4294967295, got true \(a boolean\)$/],
      [{ microBatchSize: '4' }, /microBatchSize must be an integer, got "4" \(a string\)$/],
      [{ seed: -1 }, /seed must be an integer in 0\.\.4294967295, got -1/],
      [{ maxShift: -1 }, /maxShift must be an integer >= 0/],
      [{ maxSteps: 0 }, /maxSteps must be an integer >= 1, got 0/],
      [{ model: { options: {} } }, /model must be a model spec/],
      [{ optimizer: 42 }, /optimizer must be an optimizer name \('adam'\) or spec \{name, \.\.\.\}, got 42$/],
      [{ optimizer: '' }, /optimizer must be an optimizer name \('adam'\) or spec/],
      [{ schedule: {} }, /schedule must be a schedule/],
    ];
    for (const [options, message] of cases) {
      let caught: unknown;
      try {
        resolveTrainingConfig(options);
      } catch (error) {
        caught = error;
      }
      expect(isCallosumError(caught, 'INVALID_ARGUMENT'), JSON.stringify(options)).toBe(true);
      expect((caught as Error).message).toMatch(/^training config: /);
      expect((caught as Error).message).toMatch(message);
    }
  });

  it('refuse a tfjs optimizer object, naming what to give instead, and show no more than 100 characters of a value', () => {
    expect(() => resolveTrainingConfig({ optimizer: tf.train.adam(0.01) as never })).toThrow(
      callosumError(
        'INVALID_ARGUMENT',
        "training config: optimizer is a tfjs optimizer object, which Callosum does not take (its optimizers are its own): give optimizer { name: 'adam' } and learningRate 0.01 instead",
      ),
    );
    const big = { kind: 'x'.repeat(500) };
    expect(() => resolveTrainingConfig({ model: big as never })).toThrow(
      /^training config: model must be a model spec \{name, options\?\}, got \{"kind":"x{91}… \(511 characters\)$/,
    );
  });
});
