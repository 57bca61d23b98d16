import * as tf from '@tensorflow/tfjs-core';
import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AdamWSpec, OptimizerSpec } from './optimizer.js';
import { createOptimizer } from './registry.js';
import { gradientVectors, maxRelativeError, runSteps, seededRandom, uniformVector } from './test-support.js';

const PARAMETER_COUNT = 1000;
const STEP_COUNT = 12;
const TOLERANCE = 1e-5;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function randomProblem(seed: number): { initialParams: Float32Array; gradients: Float32Array[] } {
  const random = seededRandom(seed);
  return {
    initialParams: uniformVector(random, PARAMETER_COUNT, -1, 1),
    gradients: gradientVectors(random, PARAMETER_COUNT, STEP_COUNT),
  };
}

/** The same steps applied by a tfjs optimizer to a tf.variable; every tensor is disposed afterwards. */
function runTfjs(
  optimizer: tf.Optimizer,
  initialParams: Float32Array,
  gradients: readonly Float32Array[],
): Float32Array {
  const variable = tf.tidy(() => tf.variable(tf.tensor1d(initialParams)));
  for (const gradient of gradients) {
    const gradientTensor = tf.tensor1d(gradient);
    optimizer.applyGradients({ [variable.name]: gradientTensor });
    gradientTensor.dispose();
  }
  const result = variable.dataSync() as Float32Array;
  variable.dispose();
  optimizer.dispose();
  return result;
}

describe('optimizers match tf.train on the cpu backend', () => {
  const cases: { label: string; spec: OptimizerSpec; learningRate: number; tfjs: () => tf.Optimizer }[] = [
    { label: 'sgd', spec: { name: 'sgd' }, learningRate: 0.1, tfjs: () => tf.train.sgd(0.1) },
    {
      label: 'momentum',
      spec: { name: 'momentum', momentum: 0.9 },
      learningRate: 0.05,
      tfjs: () => tf.train.momentum(0.05, 0.9),
    },
    {
      label: 'momentum with nesterov',
      spec: { name: 'momentum', momentum: 0.8, nesterov: true },
      learningRate: 0.05,
      tfjs: () => tf.train.momentum(0.05, 0.8, true),
    },
    {
      // tfjs keeps beta^t as a float32 running product, so with beta2 = 0.999 its bias correction
      // 1 - beta2^t is ~1.3e-5 off the exact value used here, and each update ~6e-6 off; the parameter
      // difference this leaves grows with learningRate * steps, so use tfjs's default learning rate.
      label: 'adam with tfjs defaults',
      spec: { name: 'adam' },
      learningRate: 0.001,
      tfjs: () => tf.train.adam(),
    },
    {
      label: 'adam with explicit hyperparameters',
      spec: { name: 'adam', beta1: 0.8, beta2: 0.99, epsilon: 1e-4 },
      learningRate: 0.02,
      tfjs: () => tf.train.adam(0.02, 0.8, 0.99, 1e-4),
    },
  ];

  it.each(cases)('$label', ({ spec, learningRate, tfjs }) => {
    const { initialParams, gradients } = randomProblem(7);

    const expected = runTfjs(tfjs(), initialParams, gradients);
    const actual = runSteps(createOptimizer(spec, PARAMETER_COUNT), initialParams, gradients, learningRate);

    expect(maxRelativeError(actual, initialParams)).toBeGreaterThan(1e-3); // the run really moved the params
    expect(maxRelativeError(actual, expected)).toBeLessThanOrEqual(TOLERANCE);
  });
});

describe('adamw', () => {
  it('equals adam exactly when weightDecay is 0', () => {
    const { initialParams, gradients } = randomProblem(11);
    const adam = runSteps(createOptimizer({ name: 'adam' }, PARAMETER_COUNT), initialParams, gradients, 0.01);
    const adamW = runSteps(
      createOptimizer({ name: 'adamw', weightDecay: 0 }, PARAMETER_COUNT),
      initialParams,
      gradients,
      0.01,
    );
    expect(adamW).toEqual(adam);
  });

  it('matches a float64 evaluation of the published formula with nonzero weight decay', () => {
    const spec = { name: 'adamw', beta1: 0.85, beta2: 0.995, epsilon: 1e-6, weightDecay: 0.1 } as const;
    const learningRate = 0.02;
    const { initialParams, gradients } = randomProblem(13);

    const actual = runSteps(createOptimizer(spec, PARAMETER_COUNT), initialParams, gradients, learningRate);
    const expected = adamWReference(spec, initialParams, gradients, learningRate);

    expect(maxRelativeError(actual, expected)).toBeLessThanOrEqual(TOLERANCE);
    const withoutDecay = runSteps(
      createOptimizer({ ...spec, weightDecay: 0 }, PARAMETER_COUNT),
      initialParams,
      gradients,
      learningRate,
    );
    expect(maxRelativeError(actual, withoutDecay)).toBeGreaterThan(1e-3); // the decay term really acted
  });
});

/** Loshchilov & Hutter, "Decoupled Weight Decay Regularization", Algorithm 2 with schedule multiplier 1. */
function adamWReference(
  { beta1, beta2, epsilon, weightDecay }: Required<Omit<AdamWSpec, 'name'>>,
  initialParams: Float32Array,
  gradients: readonly Float32Array[],
  learningRate: number,
): Float64Array {
  const params = Float64Array.from(initialParams);
  const m = new Float64Array(params.length);
  const v = new Float64Array(params.length);
  gradients.forEach((gradient, index) => {
    const t = index + 1;
    for (let i = 0; i < params.length; i++) {
      const g = gradient[i] as number;
      m[i] = beta1 * (m[i] as number) + (1 - beta1) * g;
      v[i] = beta2 * (v[i] as number) + (1 - beta2) * g * g;
      const mHat = (m[i] as number) / (1 - beta1 ** t);
      const vHat = (v[i] as number) / (1 - beta2 ** t);
      const p = params[i] as number;
      params[i] = p - learningRate * (mHat / (Math.sqrt(vHat) + epsilon) + weightDecay * p);
    }
  });
  return params;
}
