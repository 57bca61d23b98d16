// A task whose metric relErr = |label − prediction| / |label| is NaN on a sample whose label and
// prediction are both 0: the worker test's, which sends weights 0 and such a sample.
import { defineTask, tf } from '@callosum/core';

export default defineTask({
  model: () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 1, useBias: false })] }),
  data: () => {
    throw new Error('a worker never loads the data');
  },
  loss: 'meanSquaredError',
  metrics: [
    function relErr(labels, predictions) {
      return tf.reshape(tf.div(tf.abs(tf.sub(labels, predictions)), tf.abs(labels)), [-1]);
    },
  ],
});
