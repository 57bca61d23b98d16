// A small conv net with BatchNormalization and Dropout, built with the functional API, on generated
// 24×24 RGB images of coloured shapes (images.mjs): 8 classes, shape (disc, square, triangle, ring) ×
// colour (warm, cool), so the net needs both the outline and the colour channels.
//
// Run: pnpm cli train --task examples/coloured-shapes/task.mjs --workers 2
import { defineTask, tf } from '@callosum/core';
import { CHANNELS, CLASS_COUNT, generateImages, IMAGE_SIZE } from './images.mjs';

/** Conv 3×3 'same' (no bias: BatchNormalization's beta takes its place) → BatchNorm → relu → MaxPool 2×2. */
function convBlock(x, filters, seed) {
  const conv = tf.layers.conv2d({
    filters,
    kernelSize: 3,
    padding: 'same',
    useBias: false,
    kernelInitializer: tf.initializers.heNormal({ seed }),
  });
  // Momentum 0.9 (Keras: 0.99) so the moving statistics catch up within a short run's few hundred steps.
  const normalized = tf.layers.batchNormalization({ momentum: 0.9 }).apply(conv.apply(x));
  return tf.layers
    .maxPooling2d({ poolSize: 2 })
    .apply(tf.layers.activation({ activation: 'relu' }).apply(normalized));
}

export default defineTask({
  model: ({ seed }) => {
    const input = tf.input({ shape: [IMAGE_SIZE, IMAGE_SIZE, CHANNELS] });
    let x = convBlock(input, 8, seed); // 12×12×8
    x = convBlock(x, 16, seed + 1); // 6×6×16
    x = convBlock(x, 32, seed + 2); // 3×3×32
    x = tf.layers.flatten().apply(x);
    x = tf.layers
      .dense({
        units: 64,
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: seed + 3 }),
      })
      .apply(x);
    x = tf.layers.dropout({ rate: 0.25, seed: seed + 4 }).apply(x);
    const output = tf.layers
      .dense({
        units: CLASS_COUNT,
        activation: 'softmax',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 5 }),
      })
      .apply(x);
    return tf.model({ inputs: input, outputs: output, name: 'coloured_shapes' });
  },
  // Three sets drawn with their own fixed seeds, as { values, shape }: float32 images, int32 classes.
  data: () => ({
    train: generateImages(8000, 1),
    validation: generateImages(2000, 2),
    test: generateImages(3000, 3),
  }),
  loss: 'sparseCategoricalCrossentropy',
  metrics: ['accuracy'],
  optimizer: { name: 'adam', learningRate: 0.003 },
  epochs: 8,
  batchSize: 64,
});
