// A small, noisy regression that a large network overfits within a few dozen epochs: what early
// stopping is for. 160 samples of 4 features; the target is a smooth function plus noise.
import { defineTask, tf } from '@callosum/core';

const FEATURES = 4;

/** Deterministic uniform floats in [-1, 1) (a linear congruential generator). */
function uniform(seed) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  };
}

function samples(count, seed) {
  const next = uniform(seed);
  const xs = new Float32Array(count * FEATURES);
  const ys = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let target = 0;
    for (let j = 0; j < FEATURES; j++) {
      const value = next();
      xs[i * FEATURES + j] = value;
      target += Math.sin(2 * value + j);
    }
    ys[i] = target + 0.5 * next();
  }
  return { xs: { values: xs, shape: [count, FEATURES] }, ys: { values: ys, shape: [count, 1] } };
}

export default defineTask({
  model: ({ seed }) =>
    tf.sequential({
      layers: [
        tf.layers.dense({
          units: 128,
          activation: 'relu',
          inputShape: [FEATURES],
          kernelInitializer: tf.initializers.glorotUniform({ seed }),
        }),
        tf.layers.dense({
          units: 128,
          activation: 'relu',
          kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
        }),
        tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }) }),
      ],
    }),
  data: () => ({ train: samples(160, 3) }),
  loss: 'meanSquaredError',
  metrics: ['mae'],
  optimizer: { name: 'adam', learningRate: 0.01 },
  epochs: 100,
  batchSize: 16,
});
