import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import type { AnyOptimizerSpec } from './registry.js';
import { createOptimizer } from './registry.js';
import { callosumError } from './test-support.js';

describe('optimizer options', () => {
  const invalidSpecs: [string, AnyOptimizerSpec][] = [
    ['momentum must be a number in [0, 1), got 1', { name: 'momentum', momentum: 1 }],
    ['momentum must be a number in [0, 1), got -0.1', { name: 'momentum', momentum: -0.1 }],
    ['nesterov must be true or false, got "yes"', { name: 'momentum', nesterov: 'yes' } as AnyOptimizerSpec],
    ['beta1 must be a number in [0, 1), got 1', { name: 'adam', beta1: 1 }],
    ['beta2 must be a number in [0, 1), got NaN', { name: 'adam', beta2: Number.NaN }],
    ['epsilon must be a number > 0, got 0', { name: 'adam', epsilon: 0 }],
    ['epsilon must be a number > 0, got Infinity', { name: 'adamw', epsilon: Number.POSITIVE_INFINITY }],
    ['weightDecay must be a number >= 0, got -0.01', { name: 'adamw', weightDecay: -0.01 }],
    ['beta1 must be a number in [0, 1), got "0.9"', { name: 'adamw', beta1: '0.9' } as AnyOptimizerSpec],
  ];

  it.each(invalidSpecs)('rejects: %s', (message, spec) => {
    expect(() => createOptimizer(spec, 10)).toThrow(
      callosumError(ErrorCodes.INVALID_ARGUMENT, `optimizer "${spec.name}": ${message}`),
    );
  });

  it('rejects an option the optimizer does not have, suggesting the near one and listing the ones it has', () => {
    expect(() => createOptimizer({ name: 'adam', beta_1: 0.9 } as AnyOptimizerSpec, 10)).toThrow(
      callosumError(
        ErrorCodes.INVALID_ARGUMENT,
        'optimizer "adam" has no option "beta_1" (did you mean "beta1"?); options: name, beta1, beta2, epsilon',
      ),
    );
  });

  it("refuses momentum on sgd (Keras's and PyTorch's SGD take one), giving the spec of Callosum's momentum", () => {
    expect(() => createOptimizer({ name: 'sgd', momentum: 0.9 } as AnyOptimizerSpec, 10)).toThrow(
      callosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `optimizer "sgd" has no option "momentum"; options: name; for SGD with momentum, give { name: 'momentum', momentum: 0.9 } instead`,
      ),
    );
    expect(() => createOptimizer({ name: 'sgd', nesterov: true } as AnyOptimizerSpec, 10)).toThrow(
      callosumError(ErrorCodes.INVALID_ARGUMENT, `give { name: 'momentum', nesterov: true } instead`),
    );
  });

  it.each(['learningRate', 'learning_rate', 'lr'])(
    'says the learning rate (%s) is an option of the run, not of the optimizer',
    (key) => {
      expect(() => createOptimizer({ name: 'adam', [key]: 0.1 } as AnyOptimizerSpec, 10)).toThrow(
        callosumError(
          ErrorCodes.INVALID_ARGUMENT,
          `optimizer "adam" has no option "${key}": the learning rate is the training option learningRate (--lr), beside optimizer; options: name, beta1, beta2, epsilon`,
        ),
      );
    },
  );

  it.each([0, -3, 2.5, Number.NaN])('rejects parameterCount %s', (parameterCount) => {
    expect(() => createOptimizer({ name: 'adam' }, parameterCount)).toThrow(
      callosumError(ErrorCodes.INVALID_ARGUMENT, 'optimizer "adam": parameterCount must be an integer >= 1'),
    );
  });
});

describe('optimizer step inputs', () => {
  const optimizer = createOptimizer({ name: 'momentum' }, 4);
  const params = new Float32Array(4);

  it('rejects params or gradient of the wrong length', () => {
    expect(() => optimizer.step(params, new Float32Array(3), 0.1)).toThrow(
      callosumError(ErrorCodes.SHAPE_MISMATCH, 'optimizer "momentum": gradient has length 3, expected 4'),
    );
    expect(() => optimizer.step(new Float32Array(5), new Float32Array(4), 0.1)).toThrow(
      callosumError(ErrorCodes.SHAPE_MISMATCH, 'optimizer "momentum": params has length 5, expected 4'),
    );
  });

  it.each([-0.1, Number.NaN, Number.POSITIVE_INFINITY])('rejects learning rate %s', (learningRate) => {
    expect(() => optimizer.step(params, new Float32Array(4), learningRate)).toThrow(
      callosumError(ErrorCodes.INVALID_ARGUMENT, 'learningRate must be a number >= 0'),
    );
  });

  it('counts only the steps it applied', () => {
    expect(optimizer.exportState().step).toBe(0);
    optimizer.step(params, Float32Array.of(1, 2, 3, 4), 0.1);
    expect(optimizer.exportState().step).toBe(1);
  });
});
