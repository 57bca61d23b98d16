import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import type { Optimizer } from './optimizer.js';
import { OptimizerNames } from './optimizer.js';
import { createOptimizer, registeredOptimizerNames, registerOptimizer } from './registry.js';
import { callosumError } from './test-support.js';

describe('optimizer registry', () => {
  it('registers every built-in optimizer once', () => {
    expect(registeredOptimizerNames()).toEqual(['sgd', 'momentum', 'adam', 'adamw']);
    for (const name of Object.values(OptimizerNames)) {
      expect(createOptimizer({ name }, 10).name).toBe(name);
    }
  });

  it('rejects a second registration under a taken name', () => {
    expect(() => registerOptimizer('adam', () => createOptimizer({ name: 'sgd' }, 1))).toThrow(
      callosumError(ErrorCodes.DUPLICATE_REGISTRATION, 'optimizer "adam" is already registered'),
    );
  });

  it('rejects an unknown name and lists the registered ones', () => {
    expect(() => createOptimizer({ name: 'adagrad' }, 10)).toThrow(
      callosumError(
        ErrorCodes.UNKNOWN_NAME,
        'unknown optimizer "adagrad"; registered optimizers: sgd, momentum, adam, adamw',
      ),
    );
    expect(() => createOptimizer({ name: 'Adam' }, 10)).toThrow(
      callosumError(ErrorCodes.UNKNOWN_NAME, 'unknown optimizer "Adam" (did you mean "adam"?); registered'),
    );
  });

  it('builds a custom optimizer from its own spec', () => {
    interface SignSgdSpec {
      readonly name: 'test-sign-sgd';
      readonly scale: number;
    }
    const received: [SignSgdSpec, number][] = [];
    const built = createOptimizer({ name: 'sgd' }, 4);
    registerOptimizer<SignSgdSpec>('test-sign-sgd', (spec, parameterCount): Optimizer => {
      received.push([spec, parameterCount]);
      return built;
    });
    const spec: SignSgdSpec = { name: 'test-sign-sgd', scale: 2 };

    expect(createOptimizer(spec, 4)).toBe(built);
    expect(received).toEqual([[spec, 4]]);
    expect(registeredOptimizerNames()).toContain('test-sign-sgd');
  });
});
