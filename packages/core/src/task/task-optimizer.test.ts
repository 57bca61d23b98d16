import '../backends/cpu.js';
import { describe, expect, it } from 'vitest';
import { callosumError } from '../optim/test-support.js';
import * as tf from '../tf.js';
import { defineTask, type TaskOptimizer } from './define-task.js';
import { taskFromDefinition } from './module-task.js';

/** A task "spam" whose optimizer setting is `optimizer`, as a module's loader makes it. */
const spam = (optimizer: unknown) =>
  taskFromDefinition(
    defineTask({
      model: () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 1 })] }),
      data: () => ({ train: { xs: tf.zeros([2, 3]), ys: tf.zeros([2, 1]) } }),
      loss: 'meanSquaredError',
      optimizer: optimizer as TaskOptimizer,
    }),
    'spam',
  );

describe("a task's optimizer setting", () => {
  it('becomes the run defaults: the optimizer spec, and its learning rate apart', () => {
    expect(spam({ name: 'adam', learningRate: 0.01, beta1: 0.8 }).defaults).toMatchObject({
      optimizer: { name: 'adam', beta1: 0.8 },
      learningRate: 0.01,
    });
    expect(spam('sgd').defaults).toMatchObject({ optimizer: { name: 'sgd' }, learningRate: 0.001 });
  });

  it('refuses an option the optimizer does not take, naming the task, suggesting learningRate and listing it', () => {
    const options = 'options: name, learningRate, beta1, beta2, epsilon';
    expect(() => spam({ name: 'adam', learning_rate: 0.1 })).toThrow(
      callosumError(
        'TASK_INVALID',
        `task spam: optimizer "adam" has no option "learning_rate" (did you mean "learningRate"?); ${options}`,
      ),
    );
    expect(() => spam({ name: 'adam', lr: 0.1 })).toThrow(
      callosumError(
        'TASK_INVALID',
        `task spam: optimizer "adam" has no option "lr" (did you mean "learningRate"?)`,
      ),
    );
    expect(() => spam({ name: 'adam', beta_1: 0.9 })).toThrow(
      callosumError(
        'TASK_INVALID',
        `optimizer "adam" has no option "beta_1" (did you mean "beta1"?); ${options}`,
      ),
    );
  });

  it("refuses momentum on sgd, giving the task's spec for Callosum's momentum", () => {
    expect(() => spam({ name: 'sgd', learningRate: 0.1, momentum: 0.9 })).toThrow(
      callosumError(
        'TASK_INVALID',
        `task spam: optimizer "sgd" has no option "momentum"; options: name, learningRate; for SGD with momentum, give { name: 'momentum', learningRate: 0.1, momentum: 0.9 } instead`,
      ),
    );
  });

  it('refuses an unknown optimizer name, naming the task and the name meant', () => {
    const unknown =
      'task spam: unknown optimizer "adamm" (did you mean "adam"?); registered optimizers: sgd, momentum, adam, adamw';
    expect(() => spam({ name: 'adamm' })).toThrow(callosumError('UNKNOWN_NAME', unknown));
    expect(() => spam('adamm')).toThrow(callosumError('UNKNOWN_NAME', unknown));
  });

  it('refuses a setting out of its range when the task loads, naming the task', () => {
    expect(() => spam({ name: 'adam', beta1: 2 })).toThrow(
      callosumError(
        'INVALID_ARGUMENT',
        'task spam: optimizer "adam": beta1 must be a number in [0, 1), got 2',
      ),
    );
    expect(() => spam({ name: 'momentum', momentum: '0.9' })).toThrow(
      callosumError(
        'INVALID_ARGUMENT',
        'task spam: optimizer "momentum": momentum must be a number in [0, 1), got "0.9" (a string)',
      ),
    );
  });

  it('leaves a name it does not know, and that is no typo of a built-in one, to the process that builds the optimizer', () => {
    // A star run's workers load the module without the optimizer the program registered for its coordinator.
    expect(spam({ name: 'signsgd', learningRate: 0.01, scale: 2 }).defaults).toMatchObject({
      optimizer: { name: 'signsgd', scale: 2 },
      learningRate: 0.01,
    });
  });

  it("refuses a learning rate that is not > 0 as the task's optimizer setting, not the run's", () => {
    expect(() => spam({ name: 'adam', learningRate: -0.1 })).toThrow(
      callosumError(
        'INVALID_ARGUMENT',
        'task spam: optimizer "adam": learningRate must be a number > 0, got -0.1',
      ),
    );
    expect(() => spam({ name: 'sgd', learningRate: 0 })).toThrow(
      callosumError(
        'INVALID_ARGUMENT',
        'task spam: optimizer "sgd": learningRate must be a number > 0, got 0',
      ),
    );
  });

  it('refuses a tfjs optimizer object, naming the spec to give instead, without its tensors', () => {
    const refusal = (given: string) =>
      `task spam: its optimizer is a tfjs optimizer object, which Callosum does not take (its optimizers are its own): give ${given} instead`;
    expect(() => spam(tf.train.adam(0.01))).toThrow(
      callosumError('TASK_INVALID', refusal("{ name: 'adam', learningRate: 0.01 }")),
    );
    expect(() => spam(tf.train.sgd(0.1))).toThrow(
      callosumError('TASK_INVALID', refusal("{ name: 'sgd', learningRate: 0.1 }")),
    );
    // Another tfjs copy's optimizer is not a tf.Optimizer of this one, but has applyGradients.
    expect(() => spam({ learningRate: 0.5, applyGradients: () => {} })).toThrow(
      callosumError('TASK_INVALID', refusal("{ name: 'adam', learningRate: 0.5 }")),
    );
  });

  it('refuses what is neither a name nor a spec', () => {
    expect(() => spam(42)).toThrow(
      callosumError(
        'TASK_INVALID',
        "task spam: its optimizer must be a name ('adam') or { name, learningRate?, ...settings }, got 42",
      ),
    );
  });
});
