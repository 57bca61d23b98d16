import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it, vi } from 'vitest';
import { registerWasmTrainingKernels } from './index.js';
import { computeOnCpuAndWasm, seededUniform } from './test-support.js';

// The other test files register before the wasm backend is initialised; this one registers after.
const registeredKernels = () =>
  [
    'Conv2DBackpropFilter',
    'DepthwiseConv2dNativeBackpropFilter',
    'DepthwiseConv2dNativeBackpropInput',
    'UnsortedSegmentSum',
    'BatchMatMul',
    'MaxPoolGrad',
    'Transpose',
    'Sum',
    'Add',
    'Identity',
    'Cast',
  ].map((name) => tf.getKernel(name, 'wasm'));

describe('registerWasmTrainingKernels', () => {
  it('works after the wasm backend is initialised, and a second call changes nothing', async () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    await tf.setBackend('wasm');
    const warn = vi.spyOn(console, 'warn');

    registerWasmTrainingKernels();
    const afterFirstCall = registeredKernels();
    registerWasmTrainingKernels();

    expect(afterFirstCall.every((kernel) => kernel !== undefined)).toBe(true);
    expect(registeredKernels()).toEqual(afterFirstCall);
    expect(warn).not.toHaveBeenCalled();
    warn.mockRestore();

    const x = seededUniform(2 * 9 * 9 * 3, 41, 0, 1);
    const weights = seededUniform(3 * 3 * 3 * 4, 42, -0.5, 0.5);
    const convolutionGradient = () => {
      const input = tf.tensor4d(x, [2, 9, 9, 3]);
      const squaredOutput = (filter: tf.Tensor) =>
        tf.sum(tf.square(tf.conv2d(input, filter as tf.Tensor4D, 2, 'same')));
      return tf.grad(squaredOutput)(tf.tensor4d(weights, [3, 3, 3, 4]));
    };
    const { maxAbsDifference } = await computeOnCpuAndWasm(convolutionGradient);
    expect(maxAbsDifference).toBeLessThanOrEqual(1e-4);
  });
});
