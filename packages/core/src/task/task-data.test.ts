import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { callosumError } from '../optim/test-support.js';
import * as tf from '../tf.js';
import { defineTask, type TaskDataSplits, type TaskSplit } from './define-task.js';
import { taskFromDefinition } from './module-task.js';
import { loadTaskForTraining } from './prepare-task.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A task "check" of a model from 4 features to `units` outputs, trained on `train` (and `test`). */
function taskOf(loss: string, units: number, train: TaskSplit, test?: TaskSplit, metrics?: string[]) {
  const data: TaskDataSplits = { train, test };
  return taskFromDefinition(
    defineTask({
      model: () =>
        tf.sequential({
          layers: [
            tf.layers.dense({
              inputShape: [4],
              units,
              activation: loss === 'sparseCategoricalCrossentropy' ? 'softmax' : 'linear',
            }),
          ],
        }),
      data: () => data,
      loss,
      ...(metrics === undefined ? {} : { metrics }),
    }),
    'check',
  );
}

const features = (count: number, perSample = 4) => ({
  values: Float32Array.from({ length: count * perSample }, (_, i) => i / 10),
  shape: [count, perSample],
});

async function problemOf(task: ReturnType<typeof taskOf>): Promise<unknown> {
  try {
    const { taskModel } = await loadTaskForTraining(task, 1);
    taskModel.model.dispose();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('checkTaskData (through loadTaskForTraining)', () => {
  it('accepts data that fits the model and the loss', async () => {
    const sparse = taskOf('sparseCategoricalCrossentropy', 3, {
      xs: features(3),
      ys: { values: Float32Array.of(0, 2, 1), shape: [3] },
    });
    expect(await problemOf(sparse)).toBeUndefined();
    const regression = taskOf('meanSquaredError', 2, { xs: features(3), ys: tf.zeros([3, 2]) });
    expect(await problemOf(regression)).toBeUndefined();
  });

  it('refuses float labels for sparse cross-entropy, naming the label', async () => {
    const task = taskOf('sparseCategoricalCrossentropy', 3, {
      xs: features(3),
      ys: { values: Float32Array.of(0, 1.5, 2), shape: [3] },
    });
    expect(await problemOf(task)).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: train data: label 1 is 1.5; sparseCategoricalCrossentropy takes class indices, integers in 0..2 for a model with 3 outputs',
      ),
    );
  });

  it('refuses a label at or beyond the number of classes', async () => {
    const task = taskOf('sparseCategoricalCrossentropy', 3, {
      xs: features(4),
      ys: { values: Int32Array.of(0, 1, 2, 3), shape: [4] },
    });
    expect(await problemOf(task)).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: train data: label 3 is 3;',
        'integers in 0..2 for a model with 3 outputs',
      ),
    );
    const negative = taskOf('sparseCategoricalCrossentropy', 3, {
      xs: features(2),
      ys: { values: Int32Array.of(0, -1), shape: [2] },
    });
    expect(await problemOf(negative)).toEqual(callosumError('TASK_INVALID', 'label 1 is -1;'));
  });

  it('refuses one-hot labels for sparse cross-entropy, and labels of the wrong width for MSE', async () => {
    const oneHot = taskOf('sparseCategoricalCrossentropy', 3, { xs: features(2), ys: tf.oneHot([0, 2], 3) });
    expect(await problemOf(oneHot)).toEqual(
      callosumError(
        'TASK_INVALID',
        'sparseCategoricalCrossentropy takes one class index per sample, the labels have shape [3]',
      ),
    );
    const wide = taskOf('meanSquaredError', 2, { xs: features(2), ys: tf.zeros([2, 3]) });
    expect(await problemOf(wide)).toEqual(
      callosumError(
        'TASK_INVALID',
        "task check: train data: labels of shape [3] per sample do not fit the model's output of 2 values for meanSquaredError",
      ),
    );
  });

  it("refuses features whose shape does not match the model's input", async () => {
    const task = taskOf('meanSquaredError', 1, { xs: features(3, 5), ys: tf.zeros([3, 1]) });
    expect(await problemOf(task)).toEqual(
      callosumError(
        'TASK_INVALID',
        "task check: train data: features of shape [5] per sample do not fit the model's input [4]",
      ),
    );
  });

  it('refuses NaN or infinite features, naming the sample, and non-finite labels', async () => {
    const xs = features(3);
    xs.values[6] = Number.NaN; // sample 1
    const task = taskOf('meanSquaredError', 1, { xs, ys: tf.zeros([3, 1]) });
    expect(await problemOf(task)).toEqual(
      callosumError('TASK_INVALID', 'task check: train data: features of sample 1 hold NaN'),
    );
    const infinite = features(3);
    infinite.values[11] = Number.POSITIVE_INFINITY; // sample 2
    expect(await problemOf(taskOf('meanSquaredError', 1, { xs: infinite, ys: tf.zeros([3, 1]) }))).toEqual(
      callosumError('TASK_INVALID', 'features of sample 2 hold Infinity'),
    );
    const labels = { values: Float32Array.of(0, Number.NaN), shape: [2, 1] };
    expect(await problemOf(taskOf('meanSquaredError', 1, { xs: features(2), ys: labels }))).toEqual(
      callosumError('TASK_INVALID', 'task check: train data: label 1 is NaN'),
    );
  });

  it("refuses fractional features for a model whose input is int32 (an Embedding's indices would be truncated)", async () => {
    const embeddingTask = (xs: TaskSplit['xs']) =>
      taskFromDefinition(
        defineTask({
          model: () =>
            tf.sequential({
              layers: [
                tf.layers.embedding({ inputDim: 10, outputDim: 2, inputLength: 4 }),
                tf.layers.flatten(),
                tf.layers.dense({ units: 1 }),
              ],
            }),
          data: () => ({ train: { xs, ys: tf.zeros([2, 1]) } }),
          loss: 'meanSquaredError',
        }),
        'check',
      );
    const indices = Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7);
    expect(await problemOf(embeddingTask({ values: indices, shape: [2, 4] }))).toBeUndefined();
    const fractional = Float32Array.from(indices, (value) => value + (value === 6 ? 0.9 : 0));
    expect(await problemOf(embeddingTask({ values: fractional, shape: [2, 4] }))).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: train data: features of sample 1 hold 6.9, but the model takes indices there (an int32 input, or an Embedding): give integers',
      ),
    );
    // An int32 input takes indices too, whatever reads them.
    const int32Input = taskFromDefinition(
      defineTask({
        model: () => {
          const input = tf.input({ shape: [4], dtype: 'int32' });
          const output = tf.layers.dense({ units: 1 }).apply(input) as tf.SymbolicTensor;
          return tf.model({ inputs: input, outputs: output });
        },
        data: () => ({ train: { xs: { values: fractional, shape: [2, 4] }, ys: tf.zeros([2, 1]) } }),
        loss: 'meanSquaredError',
      }),
      'check',
    );
    expect(await problemOf(int32Input)).toEqual(
      callosumError('TASK_INVALID', 'features of sample 1 hold 6.9, but the model takes indices there'),
    );
    // Fractional features for a float32 input are what most tasks have.
    expect(
      await problemOf(taskOf('meanSquaredError', 1, { xs: features(2), ys: tf.zeros([2, 1]) })),
    ).toBeUndefined();
  });

  it('refuses binary cross-entropy labels outside [0, 1], in any split (regression targets gave a negative loss)', async () => {
    const fine = taskOf('binaryCrossentropy', 1, {
      xs: features(3),
      ys: { values: Float32Array.of(0, 0.25, 1), shape: [3, 1] },
    });
    expect(await problemOf(fine)).toBeUndefined();
    const regression = taskOf('binaryCrossentropy', 1, {
      xs: features(4),
      ys: { values: Float32Array.of(0.5, -2.9, 3.1, 1), shape: [4, 1] },
    });
    expect(await problemOf(regression)).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: train data: label 1 is -2.9; binaryCrossentropy takes probabilities, numbers in [0, 1]',
      ),
    );
    const wideTest = taskOf(
      'binaryCrossentropy',
      2,
      { xs: features(2), ys: tf.zeros([2, 2]) },
      { xs: features(2), ys: { values: Float32Array.of(0, 1, 1, 1.5), shape: [2, 2] } },
    );
    expect(await problemOf(wideTest)).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: test data: labels of sample 1 hold 1.5; binaryCrossentropy takes probabilities, numbers in [0, 1]',
      ),
    );
  });

  it('refuses categorical cross-entropy labels outside [0, 1] or not one per class', async () => {
    const oneHot = taskOf('categoricalCrossentropy', 3, { xs: features(2), ys: tf.oneHot([0, 2], 3) });
    expect(await problemOf(oneHot)).toBeUndefined();
    const negative = taskOf('categoricalCrossentropy', 3, {
      xs: features(2),
      ys: { values: Float32Array.of(1, 0, 0, 0, -1, 2), shape: [2, 3] },
    });
    expect(await problemOf(negative)).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: train data: labels of sample 1 hold -1; categoricalCrossentropy takes probabilities, numbers in [0, 1]',
      ),
    );
    const indices = taskOf('categoricalCrossentropy', 3, {
      xs: features(2),
      ys: { values: Float32Array.of(0, 2), shape: [2] },
    });
    expect(await problemOf(indices)).toEqual(
      callosumError(
        'TASK_INVALID',
        "task check: train data: labels of shape [] per sample do not fit the model's output of 3 values for categoricalCrossentropy (class indices are for sparseCategoricalCrossentropy)",
      ),
    );
  });

  it('refuses a cross-entropy over the classes of a model with one output (always 0)', async () => {
    const single = taskOf('categoricalCrossentropy', 1, {
      xs: features(3),
      ys: { values: Float32Array.of(-1, -2.5, -0.5), shape: [3, 1] },
    });
    expect(await problemOf(single)).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: categoricalCrossentropy over a model with 1 output is always 0 (a cross-entropy over one class); give the model one output per class, or use binaryCrossentropy for one probability',
      ),
    );
    const sparse = taskOf('sparseCategoricalCrossentropy', 1, {
      xs: features(2),
      ys: { values: Int32Array.of(0, 0), shape: [2] },
    });
    expect(await problemOf(sparse)).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: sparseCategoricalCrossentropy over a model with 1 output is always 0',
      ),
    );
  });

  it('checks the labels of metrics that are cross-entropies, as for a loss', async () => {
    const regression = (ys: TaskSplit['ys'], metrics: string[], units = 1) =>
      taskOf('meanSquaredError', units, { xs: features(2), ys }, undefined, metrics);
    expect(await problemOf(regression(tf.tensor2d([[10], [-3]]), ['binaryCrossentropy']))).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: train data: label 0 is 10; metric binaryCrossentropy takes probabilities, numbers in [0, 1]',
      ),
    );
    expect(await problemOf(regression(tf.tensor2d([[1], [0]]), ['sparseCategoricalCrossentropy']))).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: metric sparseCategoricalCrossentropy over a model with 1 output is always 0',
      ),
    );
    const oneHot = tf.tensor2d([
      [1, 0],
      [0, 1],
    ]);
    expect(await problemOf(regression(oneHot, ['sparseCategoricalCrossentropy'], 2))).toEqual(
      callosumError(
        'TASK_INVALID',
        'task check: train data: metric sparseCategoricalCrossentropy takes one class index per sample, the labels have shape [2]',
      ),
    );
    expect(
      await problemOf(regression(tf.tensor2d([[1], [0]]), ['binaryCrossentropy', 'mae'])),
    ).toBeUndefined();
  });

  it('checks every split, naming the one that does not fit', async () => {
    const fine = { xs: features(2), ys: tf.zeros([2, 1]) };
    const task = taskOf('meanSquaredError', 1, fine, { xs: features(2, 3), ys: tf.zeros([2, 1]) });
    expect(await problemOf(task)).toEqual(
      callosumError(
        'TASK_INVALID',
        "task check: test data: features of shape [3] per sample do not fit the model's input [4]",
      ),
    );
  });
});

describe('an image task', () => {
  /** A task "images" of a conv model over 8×8×3 images, trained on features of `shape` per sample. */
  function imageTask(shape: number[]) {
    const values = new Float32Array(2 * shape.reduce((a, b) => a * b, 1));
    return taskFromDefinition(
      defineTask({
        model: () =>
          tf.sequential({
            layers: [
              tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 2, kernelSize: 3 }),
              tf.layers.flatten(),
              tf.layers.dense({ units: 1 }),
            ],
          }),
        data: () => ({
          train: {
            xs: { values, shape: [2, ...shape] },
            ys: { values: Float32Array.of(0, 1), shape: [2, 1] },
          },
        }),
        loss: 'meanSquaredError',
        images: true,
      }),
      'images',
    );
  }

  it('refuses images channels first (PyTorch order), which hold as many values as the input, saying so', async () => {
    expect(await problemOf(imageTask([3, 8, 8]))).toEqual(
      callosumError(
        'TASK_INVALID',
        "task images: train data: images of shape [3, 8, 8] per sample do not fit the model's input [8, 8, 3]: channels first (as PyTorch keeps them)? Callosum takes images channels last, [rows, cols, channels]",
      ),
    );
    expect(await problemOf(imageTask([8, 8, 3]))).toBeUndefined();
  });
});
