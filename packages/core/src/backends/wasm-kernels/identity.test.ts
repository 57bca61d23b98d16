import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from './index.js';
import './test-support.js';

registerWasmTrainingKernels();

describe('Identity and Cast on wasm', () => {
  it('shares the input memory instead of copying, and frees it when the last user is disposed', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as tf.KernelBackend & { refCount(dataId: object): number };
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const y = tf.clone(x);
    expect(y.dataId).toBe(x.dataId);
    expect(backend.refCount(x.dataId)).toBe(2);

    x.dispose();
    expect(backend.refCount(y.dataId)).toBe(1);
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    y.dispose();
    expect(backend.refCount(y.dataId)).toBe(0);
  });

  it('shares memory for a cast to the same dtype and converts for another', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor1d([1.5, -2.5, 3]);
    const same = tf.cast(x, 'float32');
    const other = tf.cast(x, 'int32');
    expect(same.dataId).toBe(x.dataId);
    expect(other.dataId).not.toBe(x.dataId);
    expect(other.dtype).toBe('int32');
    expect(Array.from(other.dataSync())).toEqual([1, -2, 3]);
    tf.dispose([x, same, other]);
  });

  it('keeps the saved activations intact through a backward pass (relu gradient)', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor1d([-2, -0.5, 0.5, 2]);
    const gradient = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(tf.relu(input), tf.tensor1d([1, 2, 3, 4]))))(
      x,
    );
    expect(Array.from(gradient.dataSync())).toEqual([0, 0, 3, 4]);
    tf.dispose([x, gradient]);
  });
});
