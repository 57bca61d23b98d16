import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { readFlatWeights } from '../params/layout.js';
import { defineTask, type TaskDefinition } from '../task/define-task.js';
import { taskFromDefinition } from '../task/module-task.js';
import { loadTaskForTraining } from '../task/prepare-task.js';
import { instantiateTask } from '../task/task.js';
import * as tf from '../tf.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const split = (count: number) => ({
  xs: { values: Float32Array.from({ length: count * 4 }, (_, i) => (i % 7) / 7), shape: [count, 4] },
  ys: { values: Float32Array.from({ length: count }, (_, i) => i % 3), shape: [count, 1] },
});

/** A regression task "probe" over 4 features, with `changes` to its definition. */
function taskWith(changes: Partial<TaskDefinition>) {
  return taskFromDefinition(
    defineTask({
      model: ({ seed }) =>
        tf.sequential({
          layers: [
            tf.layers.dense({
              inputShape: [4],
              units: 3,
              kernelInitializer: tf.initializers.glorotUniform({ seed }),
            }),
            tf.layers.batchNormalization(),
            tf.layers.dense({
              units: 1,
              kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
            }),
          ],
        }),
      data: () => ({ train: split(8), test: split(4) }),
      loss: 'meanSquaredError',
      ...changes,
    }),
    'probe',
  );
}

async function problemOf(changes: Partial<TaskDefinition>): Promise<string | undefined> {
  try {
    const { taskModel } = await loadTaskForTraining(taskWith(changes), 1);
    taskModel.model.dispose();
    return undefined;
  } catch (error) {
    return `${(error as { code?: string }).code}: ${(error as Error).message}`;
  }
}

describe('the probe of a task before training', () => {
  it('refuses a loss that does not give one value per sample, naming it and the split', async () => {
    expect(
      await problemOf({ loss: (labels, predictions) => tf.losses.meanSquaredError(labels, predictions) }),
    ).toBe(
      'TASK_INVALID: task probe: the loss function must give one value per sample (shape [2]), gave shape [] ' +
        '(a training step over 2 samples of the train data, before training)',
    );
  });

  it('refuses a metric that throws only on the test split, before a whole epoch is trained', async () => {
    let calls = 0;
    const onlyOnTest = (labels: tf.Tensor, predictions: tf.Tensor) => {
      calls += 1;
      // The training step calls it once (train); the next call is the test split's evaluation.
      if (calls > 1) throw new Error('this metric cannot read the test split');
      return tf.losses.absoluteDifference(labels, predictions, undefined, tf.Reduction.NONE).reshape([-1]);
    };
    expect(await problemOf({ metrics: [onlyOnTest] })).toBe(
      'TASK_INVALID: task probe: metric onlyOnTest threw: this metric cannot read the test split ' +
        '(an evaluation over 2 samples of the test data, before training)',
    );
  });

  it('refuses an input a layer cannot take (an Embedding index out of its range), naming the split', async () => {
    const problem = await problemOf({
      model: () =>
        tf.sequential({
          layers: [
            tf.layers.embedding({ inputDim: 2, outputDim: 2, inputLength: 4 }),
            tf.layers.flatten(),
            tf.layers.dense({ units: 1 }),
          ],
        }),
      data: () => ({
        train: {
          xs: { values: Int32Array.of(0, 1, 0, 1, 0, 1, 5, 1), shape: [2, 4] },
          ys: { values: Float32Array.of(0, 1), shape: [2, 1] },
        },
      }),
    });
    expect(problem).toMatch(
      /^TASK_INVALID: task probe: a training step failed \(a training step over 2 samples of the train data, before training\): .*5/,
    );
  });

  it('leaves the weights as the model had them (BatchNormalization moving statistics included)', async () => {
    const task = taskWith({});
    const { taskModel } = await loadTaskForTraining(task, 1);
    const fresh = instantiateTask(task, 1);
    expect(Buffer.from(readFlatWeights(taskModel.model, taskModel.layout).buffer)).toEqual(
      Buffer.from(readFlatWeights(fresh.model, fresh.layout).buffer),
    );
    taskModel.model.dispose();
    fresh.model.dispose();
  });
});
