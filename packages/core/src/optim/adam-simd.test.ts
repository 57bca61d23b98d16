import { describe, expect, it } from 'vitest';
import { nativeKernels } from '../backends/native-kernels.js';
import { AdamNative } from './adam-native.js';
import { type AdamLoop, AdamSimd } from './adam-simd.js';
import type { AdamSpec, AdamWSpec } from './optimizer.js';
import { createOptimizer } from './registry.js';
import { gradientVectors, runSteps, seededRandom, uniformVector } from './test-support.js';

/** Odd, so the last element sits in the wasm loop's padded pair. */
const PARAMETER_COUNT = 10_001;
const STEP_COUNT = 200;
const ADAM_DEFAULTS = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 };

interface Reference {
  readonly params: Float32Array;
  readonly firstMoment: Float32Array;
  readonly secondMoment: Float32Array;
}

/**
 * Adam as a plain JavaScript loop, element by element (the implementation before the SIMD one): float64
 * arithmetic, float32 stores. The SIMD pass must give exactly these bits.
 */
function referenceAdam(
  spec: { beta1: number; beta2: number; epsilon: number; weightDecay: number },
  initialParams: Float32Array,
  gradients: readonly Float32Array[],
  learningRate: number,
): Reference {
  const { beta1, beta2, epsilon, weightDecay } = spec;
  const params = initialParams.slice();
  const firstMoment = new Float32Array(params.length);
  const secondMoment = new Float32Array(params.length);
  gradients.forEach((gradient, index) => {
    const stepNumber = index + 1;
    const firstMomentScale = 1 / (1 - beta1 ** stepNumber);
    const secondMomentScale = 1 / (1 - beta2 ** stepNumber);
    for (let i = 0; i < params.length; i++) {
      const g = gradient[i] as number;
      const p = params[i] as number;
      const m = beta1 * (firstMoment[i] as number) + (1 - beta1) * g;
      const v = beta2 * (secondMoment[i] as number) + (1 - beta2) * g * g;
      firstMoment[i] = m;
      secondMoment[i] = v;
      const adamUpdate = (m * firstMomentScale) / (Math.sqrt(v * secondMomentScale) + epsilon);
      params[i] = p - learningRate * (adamUpdate + weightDecay * p);
    }
  });
  return { params, firstMoment, secondMoment };
}

/** The elements whose bits differ, as indices (none when equal). */
function differingBits(actual: Float32Array, expected: Float32Array): number[] {
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  expect(a.length).toBe(b.length);
  return [...a.keys()].filter((i) => a[i] !== b[i]);
}

describe('Adam in WebAssembly SIMD gives the bits of the plain loop', () => {
  const cases: {
    label: string;
    spec: AdamSpec | AdamWSpec;
    hyper: { beta1: number; beta2: number; epsilon: number; weightDecay: number };
    learningRate: number;
  }[] = [
    {
      label: 'adam, defaults',
      spec: { name: 'adam' },
      hyper: ADAM_DEFAULTS,
      learningRate: 0.002,
    },
    {
      label: 'adam, other betas and a large epsilon',
      spec: { name: 'adam', beta1: 0.5, beta2: 0.9, epsilon: 1e-3 },
      hyper: { beta1: 0.5, beta2: 0.9, epsilon: 1e-3, weightDecay: 0 },
      learningRate: 0.05,
    },
    {
      label: 'adamw',
      spec: { name: 'adamw', weightDecay: 0.05 },
      hyper: { beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0.05 },
      learningRate: 0.01,
    },
  ];

  it.each(cases)(`$label, over ${STEP_COUNT} steps`, ({ spec, hyper, learningRate }) => {
    const random = seededRandom(42);
    const initialParams = uniformVector(random, PARAMETER_COUNT, -1, 1);
    const gradients = gradientVectors(random, PARAMETER_COUNT, STEP_COUNT);
    const optimizer = createOptimizer(spec, PARAMETER_COUNT);
    const params = runSteps(optimizer, initialParams, gradients, learningRate);
    const expected = referenceAdam(hyper, initialParams, gradients, learningRate);
    const { slots } = optimizer.exportState();
    expect(differingBits(params, expected.params)).toEqual([]);
    expect(differingBits(slots.firstMoment as Float32Array, expected.firstMoment)).toEqual([]);
    expect(differingBits(slots.secondMoment as Float32Array, expected.secondMoment)).toEqual([]);
    // The run moved the parameters: equal bits are not two untouched copies.
    expect(differingBits(params, initialParams).length).toBeGreaterThan(PARAMETER_COUNT / 2);
  });

  it('keeps two optimizers apart (each has its own memory)', () => {
    const random = seededRandom(7);
    const initialParams = uniformVector(random, PARAMETER_COUNT, -1, 1);
    const [first, second] = gradientVectors(random, PARAMETER_COUNT, 2) as [Float32Array, Float32Array];
    const one = createOptimizer({ name: 'adam' }, PARAMETER_COUNT);
    const other = createOptimizer({ name: 'adam' }, PARAMETER_COUNT);
    const paramsOne = runSteps(one, initialParams, [first], 0.01);
    runSteps(other, initialParams, [second], 0.01);
    const expected = referenceAdam(ADAM_DEFAULTS, initialParams, [first], 0.01);
    expect(differingBits(paramsOne, expected.params)).toEqual([]);
    expect(differingBits(one.exportState().slots.firstMoment as Float32Array, expected.firstMoment)).toEqual(
      [],
    );
  });
});

const native = nativeKernels();
const loops: [string, (count: number) => AdamLoop][] = [
  ['WebAssembly SIMD', (count) => new AdamSimd(count)],
  ...(native === undefined
    ? []
    : [
        ["core's native kernels", (count: number) => new AdamNative(count, native)] as [
          string,
          (count: number) => AdamLoop,
        ],
      ]),
];

describe.each(loops)('Adam on %s gives the bits of the plain loop', (_name, createLoop) => {
  it.each([
    { label: 'adam', hyper: ADAM_DEFAULTS, learningRate: 0.002 },
    {
      label: 'adamw',
      hyper: { beta1: 0.8, beta2: 0.99, epsilon: 1e-4, weightDecay: 0.05 },
      learningRate: 0.01,
    },
  ])(`$label, over 50 steps`, ({ hyper, learningRate }) => {
    const random = seededRandom(11);
    const initialParams = uniformVector(random, PARAMETER_COUNT, -1, 1);
    const gradients = gradientVectors(random, PARAMETER_COUNT, 50);
    const loop = createLoop(PARAMETER_COUNT);
    const params = initialParams.slice();
    gradients.forEach((gradient, index) => {
      const stepNumber = index + 1;
      loop.step(params, gradient, {
        beta1: hyper.beta1,
        beta2: hyper.beta2,
        firstMomentScale: 1 / (1 - hyper.beta1 ** stepNumber),
        secondMomentScale: 1 / (1 - hyper.beta2 ** stepNumber),
        epsilon: hyper.epsilon,
        learningRate,
        weightDecay: hyper.weightDecay,
      });
    });
    const expected = referenceAdam(hyper, initialParams, gradients, learningRate);
    expect(differingBits(params, expected.params)).toEqual([]);
    expect(differingBits(loop.firstMoment, expected.firstMoment)).toEqual([]);
    expect(differingBits(loop.secondMoment, expected.secondMoment)).toEqual([]);
    expect(differingBits(params, initialParams).length).toBeGreaterThan(PARAMETER_COUNT / 2);
  });
});
