import { describe, expect, it } from 'vitest';
import { callosumError } from '../optim/test-support.js';
import { defineTask } from '../task/define-task.js';
import { taskFromDefinition } from '../task/module-task.js';
import * as tf from '../tf.js';
import { type TrainLocalOptions, trainLocal } from './train-local.js';

describe('trainLocal', () => {
  it.each([
    [{ model: { name: 'mlp' }, epochs: 1, steps: 5 }, 'has no option "steps" (did you mean "maxSteps"?)'],
    [{ model: { name: 'mlp' }, lr: 0.1 }, 'has no option "lr" (did you mean "learningRate"?)'],
    [{ model: { name: 'mlp' }, evalute: false }, 'has no option "evalute" (did you mean "evaluate"?)'],
  ])(
    'refuses an option it does not have (it would be dropped, and its default trained): %o',
    async (options, problem) => {
      await expect(trainLocal(options as unknown as TrainLocalOptions)).rejects.toThrow(
        callosumError(
          'INVALID_ARGUMENT',
          `trainLocal ${problem}; options: model, epochs, batchSize, optimizer, learningRate, schedule, seed, maxShift, maxSteps, microBatchSize, batchNorm, task, backend, evaluate, outDir, onStep, onEpoch, dataDir, dataset`,
        ),
      );
    },
  );

  it('refuses a number given as a string, naming the option and the type (it read as the number)', async () => {
    await expect(trainLocal({ model: { name: 'mlp' }, epochs: '3' as never })).rejects.toThrow(
      callosumError(
        'INVALID_ARGUMENT',
        'training config: epochs must be an integer >= 1, got "3" (a string)',
      ),
    );
  });
});

describe('trainLocal given a task', () => {
  const definition = defineTask({
    model: () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1 })] }),
    data: () => ({
      train: {
        xs: { values: Float32Array.of(0, 1, 1, 0), shape: [2, 2] },
        ys: { values: Float32Array.of(1, 0), shape: [2, 1] },
      },
    }),
    loss: 'meanSquaredError',
  });

  it.each([
    [definition, "defineTask's result"],
    ['examples/my-task/task.mjs', 'the path "examples/my-task/task.mjs"'],
  ])('that is not a Task says how to make one: %#', async (task, given) => {
    await expect(trainLocal({ task: task as never, backend: 'cpu' })).rejects.toThrow(
      callosumError(
        'INVALID_ARGUMENT',
        `task must be a Task: await loadTaskModule(path) for a task module, or taskFromDefinition(defineTask({ … }), name); got ${given}`,
      ),
    );
  });

  it('waits for an async onStep, and fails with what it rejects with (it was left unhandled, killing the process)', async () => {
    const steps: number[] = [];
    const onStep = async (event: { step: number }) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      steps.push(event.step);
      if (event.step === 2) throw new Error('this callback gives up at step 2');
    };
    const task = taskFromDefinition(definition, 'tiny');
    await expect(trainLocal({ task, backend: 'cpu', batchSize: 1, epochs: 5, onStep })).rejects.toThrow(
      'this callback gives up at step 2',
    );
    expect(steps).toEqual([1, 2]);
  });

  it('takes an optimizer by name, as a task and --optimizer do', async () => {
    const seeded = defineTask({
      model: ({ seed }) =>
        tf.sequential({
          layers: [
            tf.layers.dense({
              inputShape: [2],
              units: 1,
              kernelInitializer: tf.initializers.glorotUniform({ seed }),
            }),
          ],
        }),
      data: definition.data,
      loss: 'meanSquaredError',
    });
    const weightsWith = async (optimizer: TrainLocalOptions['optimizer']) => {
      const task = taskFromDefinition(seeded, 'seeded');
      const { weights, model } = await trainLocal({
        task,
        backend: 'cpu',
        epochs: 1,
        learningRate: 0.1,
        optimizer,
      });
      model.dispose();
      return weights;
    };
    const bySpec = await weightsWith({ name: 'sgd' });
    expect(await weightsWith('sgd')).toEqual(bySpec);
    expect(await weightsWith('adam')).not.toEqual(bySpec);
  });

  it('whose model has nothing to train is refused, naming the task', async () => {
    const frozen = defineTask({
      model: () => {
        const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1 })] });
        model.trainable = false;
        return model;
      },
      data: () => ({
        train: {
          xs: { values: Float32Array.of(0, 1, 1, 0), shape: [2, 2] },
          ys: { values: Float32Array.of(1, 0), shape: [2, 1] },
        },
      }),
      loss: 'meanSquaredError',
    });
    await expect(trainLocal({ task: taskFromDefinition(frozen, 'frozen'), backend: 'cpu' })).rejects.toThrow(
      callosumError(
        'TASK_INVALID',
        'task frozen: the model has no trainable weights (every layer is trainable: false, or has no weights): there is nothing to train',
      ),
    );
  });
});
