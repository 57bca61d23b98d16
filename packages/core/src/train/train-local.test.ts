import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMnist } from '../data/mnist.js';
import { callosumError } from '../optim/test-support.js';
import { defineTask } from '../task/define-task.js';
import { taskFromDefinition } from '../task/module-task.js';
import * as tf from '../tf.js';
import { type TrainLocalOptions, trainLocal } from './train-local.js';

/** A regression of 4 samples, 2 features to 1 output: the smallest task a run can train. */
const TINY = defineTask({
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
  data: () => ({
    train: {
      xs: { values: Float32Array.of(0, 1, 1, 0, 1, 1, 0, 0), shape: [4, 2] },
      ys: { values: Float32Array.of(1, 0, 2, 0), shape: [4, 1] },
    },
  }),
  loss: 'meanSquaredError',
});

/** A short run of TINY on the cpu backend, `maxSteps` long. */
const tinyRun = (maxSteps: number): TrainLocalOptions => ({
  task: taskFromDefinition(TINY, 'tiny'),
  backend: 'cpu',
  batchSize: 2,
  maxSteps,
  seed: 7,
});

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
    const seeded = defineTask({ model: TINY.model, data: definition.data, loss: 'meanSquaredError' });
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

  it('reports a metric that is NaN or Infinity as it is, and trains on: a metric never touches the weights', async () => {
    // relErr = |l − p| / |l|: a sample with features 0 (so p = 0, the model has no bias) and label 0 is
    // 0 / 0 = NaN in training; a test sample with label 0 and p ≠ 0 is Infinity.
    const relErr = (labels: tf.Tensor, predictions: tf.Tensor) =>
      tf.reshape(tf.div(tf.abs(tf.sub(labels, predictions)), tf.abs(labels)), [-1]);
    const regression = defineTask({
      model: ({ seed }) =>
        tf.sequential({
          layers: [
            tf.layers.dense({
              inputShape: [2],
              units: 1,
              useBias: false,
              kernelInitializer: tf.initializers.glorotUniform({ seed }),
            }),
          ],
        }),
      data: () => ({
        train: {
          xs: { values: Float32Array.of(1, 2, 0, 0, 2, 1, 1, 1), shape: [4, 2] },
          ys: { values: Float32Array.of(1, 0, 2, 3), shape: [4, 1] },
        },
        test: {
          xs: { values: Float32Array.of(1, -1, 1, 2), shape: [2, 2] },
          ys: { values: Float32Array.of(0, 3), shape: [2, 1] },
        },
      }),
      loss: 'meanSquaredError',
      metrics: ['mae', relErr],
    });
    const steps: { loss: number; metrics: Record<string, number> }[] = [];
    const epochs: { testLoss: number; testMetrics: Record<string, number> }[] = [];
    const result = await trainLocal({
      task: taskFromDefinition(regression, 'relative-error'),
      backend: 'cpu',
      epochs: 2,
      batchSize: 2,
      onStep: (event) => {
        steps.push(event);
      },
      onEpoch: (event) => {
        epochs.push(event);
      },
    });
    result.model.dispose();
    expect(result.steps).toBe(4);
    expect(steps.every((step) => Number.isFinite(step.loss) && Number.isFinite(step.metrics.mae))).toBe(true);
    // The batch holding the sample [0, 0] → 0 (one of each epoch's two): NaN; the other batch a figure.
    const nan = steps.map((step) => Number.isNaN(step.metrics.relErr));
    expect([nan[0] !== nan[1], nan[2] !== nan[3]]).toEqual([true, true]);
    expect(steps.every((step) => step.metrics.relErr !== undefined && step.metrics.relErr !== Infinity)).toBe(
      true,
    );
    expect(epochs.map((epoch) => epoch.testMetrics.relErr)).toEqual([Infinity, Infinity]);
    expect(Number.isFinite(result.testLoss)).toBe(true);
    expect(result.testMetrics.relErr).toBe(Infinity);
    expect(Number.isFinite(result.testMetrics.mae)).toBe(true);
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

describe('trainLocal refuses before training', () => {
  const base = () => tinyRun(3);

  it.each([
    [null, 'trainLocal: options must be an object ({ task, epochs, ... }), got null'],
    [
      { dataset: 42 },
      'trainLocal: dataset must be an MNIST dataset ({ train, test }, as loadMnist returns), got 42',
    ],
    [
      { dataset: { train: 1 } },
      'trainLocal: dataset.train must be an image set ({ count, rows, cols, images, labels }), got 1',
    ],
    [
      { dataset: { train: { count: 1, rows: 2, cols: 2, images: [0, 0, 0, 0], labels: new Uint8Array(1) } } },
      'trainLocal: dataset.train.images must be a Uint8Array, got [0,0,0,0] (an array)',
    ],
    [{ dataDir: 5 }, 'trainLocal: dataDir must be a string (a directory), got 5'],
  ])('a value of the wrong kind, naming the option and what it got: %o', async (options, message) => {
    await expect(trainLocal(options as never)).rejects.toThrow(callosumError('INVALID_ARGUMENT', message));
  });

  it('takes a dataset as loadMnist returns it', async () => {
    const result = await trainLocal({
      model: { name: 'mlp' },
      dataset: await loadMnist(),
      backend: 'cpu',
      batchSize: 8,
      maxSteps: 2,
      evaluate: false,
    });
    result.model.dispose();
    expect(result.steps).toBe(2);
  });

  it.each([
    [{ onStep: 5 }, 'trainLocal: onStep must be a function, got 5'],
    [{ onEpoch: 'log' }, 'trainLocal: onEpoch must be a function, got "log" (a string)'],
    [{ evaluate: 'no' }, 'trainLocal: evaluate must be true or false, got "no" (a string)'],
    [{ outDir: 5 }, 'trainLocal: outDir must be a string (a directory), got 5'],
    [
      { model: { name: 'mlp' } },
      'trainLocal: model is for the built-in MNIST models; with task the task builds its model and loads its data, so leave it out',
    ],
    [
      { dataDir: 'data', dataset: {} },
      'trainLocal: dataDir, dataset are for the built-in MNIST models; with task the task builds its model and loads its data, so leave them out',
    ],
  ])('given with a task: %o', async (options, message) => {
    await expect(trainLocal({ ...base(), ...(options as object) })).rejects.toThrow(
      callosumError('INVALID_ARGUMENT', message),
    );
  });

  describe('an outDir that cannot hold the model, before the first step (it was found after the last)', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'callosum-train-local-'));
      await writeFile(join(dir, 'a-file'), 'not a directory');
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it.each([
      ['a-file', 'it is a file'],
      ['a-file/model', 'part of its path is a file'],
    ])('%s', async (name, why) => {
      const outDir = join(dir, name);
      let steps = 0;
      await expect(
        trainLocal({
          ...base(),
          outDir,
          onStep: () => {
            steps += 1;
          },
        }),
      ).rejects.toThrow(
        callosumError(
          'INVALID_ARGUMENT',
          `trainLocal: outDir "${outDir}" must be a directory to save the model in, but ${why}`,
        ),
      );
      expect(steps).toBe(0);
    });

    it('creates one that is missing, and saves the model in it', async () => {
      const outDir = join(dir, 'new', 'model');
      const result = await trainLocal({ ...base(), outDir });
      result.model.dispose();
      expect((await readdir(outDir)).sort()).toEqual(['model.json', 'weights.bin']);
    });
  });
});

describe('trainLocal runs one at a time per process (tfjs has one backend per process)', () => {
  const options = () => tinyRun(4);
  const refusal = callosumError(
    'INVALID_ARGUMENT',
    'trainLocal is already running in this process: one trainLocal runs at a time per process, because tfjs has one backend per process',
    'Await the first run before starting another',
    'or run the other in another process',
  );

  it('refuses a second run started while one runs, at once; the first is unaffected', async () => {
    const alone = await trainLocal(options());
    alone.model.dispose();
    const [first, second] = await Promise.allSettled([trainLocal(options()), trainLocal(options())]);
    expect(second).toEqual({ status: 'rejected', reason: refusal });
    expect(first.status).toBe('fulfilled');
    if (first.status === 'fulfilled') {
      expect(first.value.weights).toEqual(alone.weights);
      first.value.model.dispose();
    }
  });

  it('refuses one started from a running one’s onStep, which trains on', async () => {
    const nested: unknown[] = [];
    const result = await trainLocal({
      ...options(),
      onStep: async () => {
        await trainLocal(options()).then(
          (inner) => inner.model.dispose(),
          (error: unknown) => nested.push(error),
        );
      },
    });
    result.model.dispose();
    expect(result.steps).toBe(4);
    expect(nested).toEqual([refusal, refusal, refusal, refusal]);
  });

  it('lets the next run start once one has ended, also by failing', async () => {
    await expect(
      trainLocal({
        ...options(),
        onStep: () => {
          throw new Error('this callback fails the run');
        },
      }),
    ).rejects.toThrow('this callback fails the run');
    await expect(trainLocal({ ...options(), learningRate: 0 })).rejects.toThrow(
      callosumError('INVALID_ARGUMENT', 'learningRate'),
    );
    const result = await trainLocal(options());
    result.model.dispose();
    expect(result.steps).toBe(4);
  });
});
