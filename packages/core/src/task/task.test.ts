import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImageSet } from '../data/mnist.js';
import { callosumError } from '../optim/test-support.js';
import { keysToWire } from '../protocol/samples.js';
import * as tf from '../tf.js';
import type { EpochEvent } from '../train/events.js';
import { randomGenerator } from '../train/test-support.js';
import { trainLocal } from '../train/train-local.js';
import { defineTask } from './define-task.js';
import { imageSamples, mnistTask } from './mnist-task.js';
import { taskFromDefinition } from './module-task.js';
import { requireSameTask, taskTrainingConfig } from './prepare-task.js';
import { inputSampleShape, instantiateTask } from './task.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('the built-in MNIST task', () => {
  it('trains a registered model with sparse cross-entropy and accuracy, its pixels divided by 255', () => {
    const task = mnistTask({ name: 'mlp', options: { hidden: [8] } });
    expect(task.name).toBe('mnist/mlp');
    expect(task.images).toBe(true);
    const taskModel = instantiateTask(task, 1);
    expect(taskModel.conversion).toEqual({
      featureDtype: 'float32',
      featureDivisor: 255,
      labelDtype: 'int32',
    });
    expect(taskModel.objective.lossName).toBe('sparseCategoricalCrossentropy');
    expect(taskModel.objective.measuresAccuracy).toBe(true);
    expect(taskModel.objective.metricNames).toEqual([]);
    expect(taskModel.layout.trainableSize).toBe(taskModel.layout.totalSize);
    expect(inputSampleShape(taskModel.model)).toEqual([28, 28, 1]);
    taskModel.model.dispose();
  });

  it('sees an image set as samples of [rows, cols] bytes with scalar labels, sharing its arrays', () => {
    const set: ImageSet = {
      count: 2,
      rows: 2,
      cols: 3,
      images: new Uint8Array(12),
      labels: Uint8Array.of(4, 2),
    };
    const samples = imageSamples(set);
    expect(samples).toEqual({
      count: 2,
      features: { values: set.images, sampleShape: [2, 3] },
      labels: { values: set.labels, sampleShape: [] },
    });
    expect(samples.features.values).toBe(set.images);
  });
});

describe('instantiateTask', () => {
  it('refuses a model with two outputs, naming the task', () => {
    const task = taskFromDefinition(
      defineTask({
        model: () => {
          const input = tf.input({ shape: [3] });
          const a = tf.layers.dense({ units: 1 }).apply(input) as tf.SymbolicTensor;
          const b = tf.layers.dense({ units: 2 }).apply(input) as tf.SymbolicTensor;
          return tf.model({ inputs: input, outputs: [a, b] });
        },
        data: () => ({ train: { xs: tf.zeros([1, 3]), ys: tf.zeros([1, 1]) } }),
        loss: 'meanSquaredError',
      }),
      'two-heads',
    );
    expect(() => instantiateTask(task, 1)).toThrow(
      callosumError(
        'TASK_INVALID',
        'task two-heads: the model has 1 inputs and 2 outputs; Callosum trains models with one of each',
      ),
    );
  });

  it('refuses an output of rank 3, showing its unknown batch dimension as null', () => {
    const task = taskFromDefinition(
      defineTask({
        model: () =>
          tf.sequential({
            layers: [
              tf.layers.dense({ inputShape: [3], units: 8 }),
              tf.layers.reshape({ targetShape: [4, 2] }),
            ],
          }),
        data: () => ({ train: { xs: tf.zeros([1, 3]), ys: tf.zeros([1, 8]) } }),
        loss: 'meanSquaredError',
      }),
      'sequence',
    );
    expect(() => instantiateTask(task, 1)).toThrow(
      callosumError(
        'TASK_INVALID',
        "task sequence: the model's output has shape [null, 4, 2]; Callosum trains",
      ),
    );
  });

  it('names the task and calls a loss written inline "the loss function" when it fails in a pass', () => {
    const task = taskFromDefinition(
      defineTask({
        model: () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] }),
        data: () => ({ train: { xs: tf.zeros([2, 3]), ys: tf.zeros([2, 2]) } }),
        loss: (labels, predictions) => tf.mean(tf.square(tf.sub(predictions, labels))),
      }),
      'inline',
    );
    const { model, objective } = instantiateTask(task, 1);
    expect(() =>
      tf.tidy(() => void objective.evaluationSums(model, tf.zeros([2, 3]), tf.zeros([2, 2]))),
    ).toThrow(
      callosumError(
        'TASK_INVALID',
        'task inline: the loss function must give one value per sample (shape [2]), gave shape []',
      ),
    );
    model.dispose();
  });

  it('feeds an int32 input int32 features', () => {
    const task = taskFromDefinition(
      defineTask({
        model: () => {
          const input = tf.input({ shape: [5], dtype: 'int32' });
          const embedded = tf.layers
            .embedding({ inputDim: 10, outputDim: 2 })
            .apply(input) as tf.SymbolicTensor;
          const output = tf.layers
            .dense({ units: 1 })
            .apply(tf.layers.flatten().apply(embedded)) as tf.SymbolicTensor;
          return tf.model({ inputs: input, outputs: output });
        },
        data: () => ({ train: { xs: tf.zeros([1, 5], 'int32'), ys: tf.zeros([1, 1]) } }),
        loss: 'meanSquaredError',
      }),
      'tokens',
    );
    const taskModel = instantiateTask(task, 1);
    expect(taskModel.conversion).toEqual({
      featureDtype: 'int32',
      featureDivisor: undefined,
      labelDtype: 'float32',
    });
    taskModel.model.dispose();
  });
});

describe('trainLocal with a task', () => {
  it('trains a regression task with BatchNormalization, and reports the test loss and metrics plain tfjs evaluates', async () => {
    const next = randomGenerator(17);
    const split = (count: number) => {
      const xs = Array.from({ length: count * 4 }, () => next() * 2 - 1);
      const ys = Array.from(
        { length: count },
        (_, i) => xs[i * 4]! - 2 * xs[i * 4 + 1]! + 0.5 * xs[i * 4 + 2]! + 0.1 * next(),
      );
      return { xs: tf.tensor2d(xs, [count, 4]), ys: tf.tensor2d(ys, [count, 1]) };
    };
    const train = split(64);
    const test = split(16);
    const task = taskFromDefinition(
      defineTask({
        model: ({ seed }) =>
          tf.sequential({
            layers: [
              tf.layers.dense({
                inputShape: [4],
                units: 8,
                activation: 'relu',
                kernelInitializer: tf.initializers.glorotUniform({ seed }),
              }),
              tf.layers.batchNormalization(),
              tf.layers.dense({
                units: 1,
                kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
              }),
            ],
          }),
        data: () => ({ train, test }),
        loss: 'meanSquaredError',
        metrics: ['mae'],
        optimizer: { name: 'adam', learningRate: 0.01 },
      }),
      'regression',
    );
    const epochs: EpochEvent[] = [];
    const stepLosses: number[][] = [[], []];
    const result = await trainLocal({
      task,
      backend: 'cpu',
      epochs: 2,
      batchSize: 16,
      onStep: (event) => stepLosses[event.epoch]?.push(event.loss),
      onEpoch: (event) => epochs.push(event),
    });
    expect(result.steps).toBe(8);
    expect(epochs.map((event) => event.epoch)).toEqual([0, 1]);
    // The epoch's training figures are the means over its batches (four of 16 samples each).
    for (const [epoch, event] of epochs.entries()) {
      const losses = stepLosses[epoch] as number[];
      expect(event.loss).toBeCloseTo(losses.reduce((sum, loss) => sum + loss, 0) / losses.length, 6);
      expect(Object.keys(event.metrics)).toEqual(['mae']);
      expect(Number.isNaN(event.accuracy)).toBe(true);
    }
    expect(epochs[1]?.testMetrics).toEqual(result.testMetrics);
    expect(epochs[1]?.testLoss).toBe(result.testLoss);
    // Without evaluation each epoch is still reported, with its training figures only.
    const unevaluated: EpochEvent[] = [];
    await trainLocal({
      task,
      backend: 'cpu',
      epochs: 2,
      batchSize: 16,
      evaluate: false,
      onEpoch: (event) => unevaluated.push(event),
    });
    expect(
      unevaluated.map((event) => [event.epoch, Number.isNaN(event.testLoss), event.testMetrics]),
    ).toEqual([
      [0, true, {}],
      [1, true, {}],
    ]);
    expect(unevaluated.map((event) => event.loss)).toEqual(epochs.map((event) => event.loss));
    expect(Number.isNaN(result.testAccuracy)).toBe(true);
    expect(Object.keys(result.testMetrics)).toEqual(['mae']);

    // The trained model (moving statistics included), evaluated by plain tfjs, gives the same figures.
    result.model.compile({ optimizer: 'sgd', loss: 'meanSquaredError', metrics: ['mae'] });
    const [loss, mae] = (result.model.evaluate(test.xs, test.ys) as tf.Scalar[]).map(
      (scalar) => scalar.dataSync()[0] as number,
    );
    expect(Math.abs(result.testLoss - (loss as number)) / (loss as number)).toBeLessThan(1e-5);
    expect(Math.abs((result.testMetrics.mae as number) - (mae as number)) / (mae as number)).toBeLessThan(
      1e-5,
    );
    // The moving statistics moved away from their initial 0 and 1.
    const movingMean = result.model.layers[1]?.getWeights()[2] as tf.Tensor;
    expect(Math.max(...Array.from(movingMean.dataSync()).map(Math.abs))).toBeGreaterThan(0);
    result.model.dispose();
    tf.dispose([train.xs, train.ys, test.xs, test.ys]);
  });
});

describe('what a task module may not do', () => {
  const regression = (layers: () => tf.layers.Layer[]) =>
    taskFromDefinition(
      defineTask({
        model: () => tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [3] }), ...layers()] }),
        data: () => ({ train: { xs: tf.zeros([2, 3]), ys: tf.zeros([2, 4]) } }),
        loss: 'meanSquaredError',
      }),
      'regression',
    );

  it('refuses a Dropout whose noise shape fixes the batch dimension, and layers whose noise is not per sample', () => {
    expect(() =>
      instantiateTask(
        regression(() => [tf.layers.dropout({ rate: 0.5, noiseShape: [1, 4] })]),
        1,
      ),
    ).toThrow(
      callosumError(
        'TASK_INVALID',
        'task regression: dropout layer',
        'fixes its noiseShape',
        'leave it null',
      ),
    );
    expect(() =>
      instantiateTask(
        regression(() => [tf.layers.gaussianNoise({ stddev: 0.1 })]),
        1,
      ),
    ).toThrow(
      callosumError(
        'TASK_INVALID',
        'task regression: layer',
        '(GaussianNoise) draws random numbers in training',
        'Callosum supports Dropout',
      ),
    );
    expect(() =>
      instantiateTask(
        regression(() => [tf.layers.dropout({ rate: 0.5 })]),
        1,
      ),
    ).not.toThrow();
  });

  it('resumes only with the task its run started with: the same name and fingerprint digest', () => {
    const task = regression(() => []);
    const config = taskTrainingConfig(task, {}, false, '0123456789abcdef');
    expect(config.model).toEqual({ name: 'task:regression', options: { fingerprint: '0123456789abcdef' } });
    expect(() => requireSameTask(task, config, false, '0123456789abcdef')).not.toThrow();
    expect(() => requireSameTask(task, config, false, 'fedcba9876543210')).toThrow(
      callosumError('INVALID_ARGUMENT', 'task regression has changed since this run started'),
    );
    expect(() => requireSameTask(task, config, true)).toThrow(
      callosumError('INVALID_ARGUMENT', 'this run trains task regression: resume it with --task'),
    );
  });

  it('sends no training samples without their dropout keys', () => {
    const samples = { count: 1, features: Float32Array.of(1, 2, 3), labels: Float32Array.of(0) };
    expect(() => keysToWire(samples)).toThrow(callosumError('INTERNAL', 'without their keys'));
    expect(keysToWire({ ...samples, keys: Uint32Array.of(0xffffffff) }).shape).toEqual([1]);
  });
});
