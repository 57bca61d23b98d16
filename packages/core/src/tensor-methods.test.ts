import { describe, expect, it } from 'vitest';
import { defineTask, taskFromDefinition, trainLocal } from './index.js';
import * as tf from './tf.js';

describe('tensor methods, as @tensorflow/tfjs has them', () => {
  it('call their ops: same-name ones, and those that reshape, cast or move the tensor', () => {
    tf.tidy(() => {
      const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
      expect(Array.from(x.mean().dataSync())).toEqual([2.5]);
      expect(Array.from(x.div(2).dataSync())).toEqual([0.5, 1, 1.5, 2]);
      expect(x.sum(1).shape).toEqual([2]);
      expect(x.flatten().shape).toEqual([4]);
      expect(x.asType('int32').dtype).toBe('int32');
      expect(x.concat(x, 0).shape).toEqual([4, 2]);
      expect(x.stack([x, x]).shape).toEqual([3, 2, 2]);
      const mask = tf.tensor2d([1, 0, 0, 1], [2, 2], 'bool');
      expect(Array.from(x.where(mask, tf.zerosLike(x)).dataSync())).toEqual([1, 0, 0, 4]);
      expect(() => x.asScalar()).toThrow(/only 1 element/);
    });
  });

  it('refuse a disposed tensor', () => {
    const x = tf.tensor1d([1, 2]);
    x.dispose();
    expect(() => x.mean()).toThrow(/disposed/);
  });

  it('let an LSTM, whose orthogonal initializer calls flatten, be built and trained', async () => {
    const samples = 16;
    const definition = defineTask({
      model: ({ seed }) =>
        tf.sequential({
          layers: [
            tf.layers.lstm({
              inputShape: [5, 2],
              units: 4,
              kernelInitializer: tf.initializers.glorotUniform({ seed }),
              recurrentInitializer: tf.initializers.orthogonal({ seed }),
            }),
            tf.layers.dense({
              units: 2,
              activation: 'softmax',
              kernelInitializer: tf.initializers.glorotUniform({ seed }),
            }),
          ],
        }),
      data: () => ({
        train: {
          xs: tf.randomUniform([samples, 5, 2], 0, 1, 'float32', 3),
          ys: tf.tensor1d(
            Array.from({ length: samples }, (_, i) => i % 2),
            'int32',
          ),
        },
      }),
      loss: 'sparseCategoricalCrossentropy',
    });
    const result = await trainLocal({
      task: taskFromDefinition(definition, 'lstm'),
      backend: 'wasm',
      batchSize: 8,
      maxSteps: 2,
      evaluate: false,
    });
    expect(result.steps).toBe(2);
    expect(result.weights.every(Number.isFinite)).toBe(true);
  });
});
