import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import type { OptimizerSpec, OptimizerState } from './optimizer.js';
import { createOptimizer } from './registry.js';
import { callosumError, gradientVectors, runSteps, seededRandom, uniformVector } from './test-support.js';

const PARAMETER_COUNT = 300;
const LEARNING_RATE = 0.01;

const specs: [string, OptimizerSpec][] = [
  ['sgd', { name: 'sgd' }],
  ['momentum', { name: 'momentum' }],
  ['nesterov momentum', { name: 'momentum', nesterov: true }],
  ['adam', { name: 'adam' }],
  ['adamw', { name: 'adamw' }],
];

describe.each(specs)('state of %s', (_label, spec) => {
  const random = seededRandom(3);
  const initialParams = uniformVector(random, PARAMETER_COUNT, -1, 1);
  const gradients = gradientVectors(random, PARAMETER_COUNT, 12);

  it('resumes bit-exactly in a fresh optimizer after export and import', () => {
    const uninterrupted = createOptimizer(spec, PARAMETER_COUNT);
    const expected = runSteps(uninterrupted, initialParams, gradients, LEARNING_RATE);

    const first = createOptimizer(spec, PARAMETER_COUNT);
    const halfway = runSteps(first, initialParams, gradients.slice(0, 5), LEARNING_RATE);
    const resumed = createOptimizer(spec, PARAMETER_COUNT);
    resumed.importState(first.exportState());
    const actual = runSteps(resumed, halfway, gradients.slice(5), LEARNING_RATE);

    expect(actual).toEqual(expected);
    expect(resumed.exportState()).toEqual(uninterrupted.exportState());
    expect(resumed.exportState().step).toBe(12);
  });

  it('exports and imports copies, not views of its slots', () => {
    const optimizer = createOptimizer(spec, PARAMETER_COUNT);
    runSteps(optimizer, initialParams, gradients.slice(0, 2), LEARNING_RATE);
    const exported = optimizer.exportState();
    const beforeMutation = structuredClone(exported);

    fillSlots(exported, 42);
    expect(optimizer.exportState()).toEqual(beforeMutation);

    optimizer.importState(exported);
    const afterImport = optimizer.exportState();
    fillSlots(exported, 7);
    expect(optimizer.exportState()).toEqual(afterImport);
  });

  it('rejects a state that does not fit, and stays unchanged', () => {
    const optimizer = createOptimizer(spec, PARAMETER_COUNT);
    runSteps(optimizer, initialParams, gradients.slice(0, 2), LEARNING_RATE);
    const valid = optimizer.exportState();
    const invalidStates: [OptimizerState, string][] = [
      [{ ...valid, name: 'other' }, 'belongs to optimizer "other"'],
      [{ ...valid, step: -1 }, 'step must be an integer >= 0, got -1'],
      [{ ...valid, step: 1.5 }, 'step must be an integer >= 0, got 1.5'],
      [{ ...valid, slots: { ...valid.slots, extra: new Float32Array(PARAMETER_COUNT) } }, 'has slots'],
    ];
    for (const [slot, values] of Object.entries(valid.slots)) {
      invalidStates.push(
        [{ ...valid, slots: { ...valid.slots, [slot]: values.subarray(1) } }, `slot "${slot}"`],
        [
          {
            ...valid,
            slots: { ...valid.slots, [slot]: Float64Array.from(values) as unknown as Float32Array },
          },
          `slot "${slot}"`,
        ],
      );
    }

    for (const [state, reason] of invalidStates) {
      expect(() => optimizer.importState(state)).toThrow(
        callosumError(ErrorCodes.SHAPE_MISMATCH, `optimizer "${spec.name}" cannot import state`, reason),
      );
    }
    expect(optimizer.exportState()).toEqual(valid);
  });
});

function fillSlots(state: OptimizerState, value: number): void {
  for (const values of Object.values(state.slots)) values.fill(value);
}
