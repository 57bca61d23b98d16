import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from './index.js';
import { maxAbsDifference, seededIntegers, seededUniform } from './test-support.js';

registerWasmTrainingKernels();

const BATCH = 8;
const CLASSES = 10;
const images = seededUniform(BATCH * 12 * 12, 11, 0, 1);
const labels = seededIntegers(BATCH, 12, 0, CLASSES - 1);

/** conv 3×3×4 (valid) → ReLU → max-pool 2×2/2 → dense 100 → 10, softmax cross-entropy. */
function createVariables(): Record<string, tf.Variable> {
  const variable = (shape: number[], seed: number, name: string) =>
    tf.variable(tf.tensor(seededUniform(tf.util.sizeFromShape(shape), seed, -0.5, 0.5), shape), true, name);
  return {
    filter: variable([3, 3, 1, 4], 21, 'filter'),
    convBias: variable([4], 22, 'convBias'),
    weights: variable([100, CLASSES], 23, 'weights'),
    bias: variable([CLASSES], 24, 'bias'),
  };
}

function loss(variables: Record<string, tf.Variable>): () => tf.Scalar {
  const { filter, convBias, weights, bias } = variables as Record<string, tf.Variable<tf.Rank>>;
  return () => {
    const x = tf.tensor4d(images, [BATCH, 12, 12, 1]);
    const features = tf.relu(tf.add(tf.conv2d(x, filter as tf.Tensor4D, 1, 'valid'), convBias as tf.Tensor));
    const pooled = tf.maxPool(features as tf.Tensor4D, 2, 2, 'valid');
    const logits = tf.add(
      tf.matMul(tf.reshape(pooled, [BATCH, 100]), weights as tf.Tensor),
      bias as tf.Tensor,
    );
    return tf.losses.softmaxCrossEntropy(
      tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES),
      logits,
    ) as tf.Scalar;
  };
}

async function gradientsOn(backend: 'cpu' | 'wasm'): Promise<Record<string, Float32Array>> {
  await tf.setBackend(backend);
  const variables = createVariables();
  const { grads } = tf.variableGrads(loss(variables));
  const values = Object.fromEntries(
    Object.entries(grads).map(([name, gradient]) => [name, Float32Array.from(gradient.dataSync())]),
  );
  tf.dispose([...Object.values(grads), ...Object.values(variables)]);
  return values;
}

describe('training a CNN on wasm', () => {
  it('gives the same variable gradients as the cpu backend', async () => {
    const cpu = await gradientsOn('cpu');
    const wasm = await gradientsOn('wasm');
    expect(Object.keys(wasm).sort()).toEqual(['bias', 'convBias', 'filter', 'weights']);
    for (const [name, expected] of Object.entries(cpu)) {
      expect(maxAbsDifference(wasm[name] as Float32Array, expected), name).toBeLessThanOrEqual(1e-4);
    }
  });

  it('leaks no tensors and no wasm memory across repeated gradient steps', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const variables = createVariables();
    const step = () =>
      tf.tidy(() => {
        tf.variableGrads(loss(variables));
      });
    const snapshot = () => ({
      ...tf.memory(),
      backendDataIds: backend.numDataIds(),
      // The Emscripten module's typings (which declare HEAPU8) are not shipped with the wasm backend.
      heapBytes: (backend.wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8.byteLength,
    });

    const tensorsBefore = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const afterWarmUp = snapshot();
    for (let i = 0; i < 5; i++) {
      step();
    }
    expect(snapshot()).toEqual(afterWarmUp);
    tf.dispose(Object.values(variables));
  });

  it('trains a tfjs-layers CNN one step like the cpu backend', async () => {
    const weightsAfterOneStep = async (backend: 'cpu' | 'wasm') => {
      await tf.setBackend(backend);
      const model = tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            inputShape: [12, 12, 1],
            filters: 4,
            kernelSize: 3,
            activation: 'relu',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 31 }),
          }),
          tfl.layers.maxPooling2d({ poolSize: 2 }),
          tfl.layers.flatten(),
          tfl.layers.dense({
            units: CLASSES,
            activation: 'softmax',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 32 }),
          }),
        ],
      });
      model.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' });
      const x = tf.tensor4d(images, [BATCH, 12, 12, 1]);
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES);
      await model.trainOnBatch(x, y);
      const weights = model.getWeights().map((weight) => Float32Array.from(weight.dataSync()));
      tf.dispose([x, y]);
      model.dispose();
      return weights;
    };

    const cpu = await weightsAfterOneStep('cpu');
    const wasm = await weightsAfterOneStep('wasm');
    expect(wasm).toHaveLength(cpu.length);
    cpu.forEach((expected, i) => {
      expect(maxAbsDifference(wasm[i] as Float32Array, expected)).toBeLessThanOrEqual(1e-4);
    });
  });
});
