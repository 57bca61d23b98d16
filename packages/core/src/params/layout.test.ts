import '../backends/cpu.js';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { flattenTensors, type ParameterLayout } from './layout.js';

const layout: ParameterLayout = {
  entries: [
    { name: 'kernel', shape: [2, 3], offset: 0, size: 6, role: 'trainable' },
    { name: 'bias', shape: [3], offset: 6, size: 3, role: 'trainable' },
  ],
  totalSize: 9,
  trainableSize: 9,
};
const kernel = [1.5, -2, 3, 4.25, -5, 6];
const bias = [7, -8.5, 9];

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe.each(['cpu', 'wasm'])('flattenTensors on %s', (backend) => {
  it('copies each tensor to its offset, into a new array or a given one (even at an offset in a larger buffer)', async () => {
    await tf.setBackend(backend);
    const tensors = [tf.tensor2d(kernel, [2, 3]), tf.tensor1d(bias)];
    const expected = [...kernel, ...bias];
    expect(Array.from(flattenTensors(tensors, layout))).toEqual(expected);

    // Like the payload of a tensor frame: 8 bytes into a buffer with room after it.
    const frame = new ArrayBuffer(8 + 9 * 4 + 16);
    const into = new Float32Array(frame, 8, 9);
    expect(flattenTensors(tensors, layout, into)).toBe(into);
    expect(Array.from(into)).toEqual(expected);
    expect(Array.from(new Float32Array(frame, 8 + 9 * 4, 4))).toEqual([0, 0, 0, 0]); // nothing past the end

    expect(() => flattenTensors(tensors, layout, new Float32Array(8))).toThrow(/8 elements, the model has 9/);
    expect(() => flattenTensors([tensors[1] as tf.Tensor, tensors[0] as tf.Tensor], layout)).toThrow(
      /tensor 0 has 3 elements, the layout expects 6/,
    );
    tf.dispose(tensors);
  });
});
