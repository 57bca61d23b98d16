import '../backends/cpu.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SampleSet } from '../data/samples.js';
import { callosumError } from '../optim/test-support.js';
import * as tf from '../tf.js';
import { type DefinedTask, defineTask, isDefinedTask, type TaskDefinition } from './define-task.js';
import { loadTaskModule } from './load-task.js';
import { taskFromDefinition } from './module-task.js';
import { requireShiftFits, taskTrainingConfig } from './prepare-task.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'test-fixtures');

let scratch: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  scratch = await mkdtemp(join(tmpdir(), 'callosum-task-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const model = () =>
  tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2, activation: 'softmax' })] });

const valid: TaskDefinition = {
  model,
  data: () => ({
    train: { xs: tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]), ys: tf.tensor1d([0, 1], 'int32') },
  }),
  loss: 'sparseCategoricalCrossentropy',
  metrics: ['accuracy'],
};

describe('defineTask', () => {
  it('marks a valid definition so that a loader recognises it, and freezes it', () => {
    const task = defineTask(valid);
    expect(isDefinedTask(task)).toBe(true);
    expect(isDefinedTask({ ...valid })).toBe(false);
    expect(isDefinedTask(undefined)).toBe(false);
    expect(Object.isFrozen(task)).toBe(true);
    expect(task.loss).toBe('sparseCategoricalCrossentropy');
  });

  it.each([
    [
      'without model',
      { ...valid, model: undefined },
      '`model` must be a function returning a tf.LayersModel',
    ],
    ['with a model instead of a factory', { ...valid, model: model() }, '`model` must be a function'],
    [
      'without data',
      { ...valid, data: undefined },
      '`data` must be a function returning { train: { xs, ys } }',
    ],
    ['without loss', { ...valid, loss: undefined }, '`loss` must be a tfjs loss name or a function'],
    ['with metrics not an array', { ...valid, metrics: 'accuracy' }, '`metrics` must be an array'],
    ['with a batch size of 0', { ...valid, batchSize: 0 }, '`batchSize` must be a positive integer, got 0'],
    ['with fractional epochs', { ...valid, epochs: 1.5 }, '`epochs` must be a positive integer, got 1.5'],
    [
      'with images given as a string',
      { ...valid, images: 'yes' },
      '`images` must be true or false, got "yes" (a string)',
    ],
    [
      'with epochs given as a string (it read as the number)',
      { ...valid, epochs: '3' },
      '`epochs` must be a positive integer, got "3" (a string)',
    ],
    [
      'with a batch size given as an array',
      { ...valid, batchSize: [32] },
      '`batchSize` must be a positive integer, got [32] (an array)',
    ],
    ['that is not an object', undefined, 'expects an object { model, data, loss }'],
    [
      'with a misspelt field (it would be dropped, and its default trained)',
      { ...valid, epoch: 50 },
      'has no option "epoch" (did you mean "epochs"?); options: model, data, loss, metrics, optimizer, images, epochs, batchSize',
    ],
    [
      'with a field spelt as Python spells it',
      { ...valid, batch_size: 8 },
      'has no option "batch_size" (did you mean "batchSize"?); options: model, data, loss, metrics, optimizer, images, epochs, batchSize',
    ],
    [
      'with two metric functions of one name (one would hide the other in every report)',
      { ...valid, metrics: [function err() {}, function err() {}] },
      '`metrics` names "err" twice: each metric is reported under its name, so one would hide the other (give each function its own name)',
    ],
    [
      'with accuracy listed twice, however spelt',
      { ...valid, metrics: ['accuracy', 'acc'] },
      '`metrics` names "accuracy" twice',
    ],
    [
      'with an undefined metric (as `cond && fn` leaves one)',
      { ...valid, metrics: ['accuracy', undefined] },
      '`metrics[1]` must be a metric name or a function (labels, predictions) => one value per sample, got undefined',
    ],
    [
      'with a null metric',
      { ...valid, metrics: [null, 'mae'] },
      '`metrics[0]` must be a metric name or a function (labels, predictions) => one value per sample, got null',
    ],
    [
      'with a false metric',
      { ...valid, metrics: ['mae', false] },
      '`metrics[1]` must be a metric name or a function (labels, predictions) => one value per sample, got false (a boolean)',
    ],
    [
      'with a function named "accuracy" beside the accuracy it would replace',
      { ...valid, metrics: ['accuracy', function accuracy() {}] },
      '`metrics` names "accuracy" beside accuracy, which evaluations report as "accuracy" and fit\'s logs as "acc": so one would hide the other (give each function its own name)',
    ],
    [
      'with a function named "acc" beside accuracy',
      { ...valid, metrics: ['acc', function acc() {}] },
      '`metrics` names "acc" beside accuracy',
    ],
    [
      'with a function named "loss", which would replace the loss in fit\'s logs',
      { ...valid, metrics: [function loss() {}] },
      '`metrics` names a function "loss": fit\'s logs report the loss as "loss", so one would hide the other',
    ],
    [
      "with a function named like a validation figure of fit's logs",
      { ...valid, metrics: ['mae', function val_mae() {}] },
      '`metrics` names a function "val_mae": fit\'s logs report the validation mae under that name',
    ],
  ])('refuses a definition %s with TASK_INVALID', (_, definition, message) => {
    expect(() => defineTask(definition as unknown as TaskDefinition)).toThrow(
      callosumError('TASK_INVALID', `defineTask: ${message}`),
    );
  });

  it('takes a metric named like a figure that is not reported beside it', () => {
    // Without accuracy measured, nothing else is reported as "accuracy"; "val_x" hides nothing without x.
    expect(() => defineTask({ ...valid, metrics: [function accuracy() {}] as never })).not.toThrow();
    expect(() => defineTask({ ...valid, metrics: ['accuracy', function val_x() {}] as never })).not.toThrow();
  });
});

describe('taskFromDefinition', () => {
  const taskOf = (overrides: Partial<TaskDefinition>) =>
    taskFromDefinition(defineTask({ ...valid, ...overrides }), 'demo');

  it("names the task's factories when they throw or return the wrong thing", async () => {
    const throwing = taskOf({
      model: () => {
        throw new Error('no such layer');
      },
    });
    expect(() => throwing.buildModel(1)).toThrow(
      callosumError('TASK_INVALID', 'task demo: its model factory threw: no such layer'),
    );
    expect(() => taskOf({ model: () => ({}) as tf.LayersModel }).buildModel(1)).toThrow(
      callosumError('TASK_INVALID', 'task demo: its model factory must return a tf.LayersModel'),
    );
    await expect(
      taskOf({
        data: async () => {
          throw new Error('spam.csv not found');
        },
      }).loadData(),
    ).rejects.toThrow(
      callosumError('TASK_INVALID', 'task demo: its data function threw: spam.csv not found'),
    );
    await expect(taskOf({ data: () => ({}) as never }).loadData()).rejects.toThrow(
      callosumError(
        'TASK_INVALID',
        'task demo: its data function must return { train: { xs, ys }, validation?, test? }',
      ),
    );
  });

  it('refuses a split or a field it does not know, which would otherwise be dropped without a word', async () => {
    const xs = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const ys = tf.tensor1d([0, 1], 'int32');
    await expect(
      taskOf({ data: () => ({ train: { xs, ys }, valid: { xs, ys } }) as never }).loadData(),
    ).rejects.toThrow(
      callosumError(
        'TASK_INVALID',
        'task demo: its data function returned a split "valid" (did you mean "validation"?); splits: train, validation, test',
      ),
    );
    await expect(
      taskOf({ data: () => ({ train: { xs, ys, sampleWeight: tf.zeros([2]) } }) as never }).loadData(),
    ).rejects.toThrow(
      callosumError(
        'TASK_INVALID',
        'task demo: data train has a field "sampleWeight" ("sampleWeight" stands for per-sample weights, which Callosum does not have); a split is { xs, ys }',
      ),
    );
    await expect(taskOf({ data: () => ({ train: { x: xs, y: ys } }) as never }).loadData()).rejects.toThrow(
      callosumError('TASK_INVALID', 'task demo: data train has a field "x" (did you mean "xs"?)'),
    );
  });

  it('passes the run seed to the model factory', () => {
    const seeds: number[] = [];
    const task = taskOf({
      model: ({ seed }) => {
        seeds.push(seed);
        return model();
      },
    });
    task.buildModel(7).dispose();
    expect(seeds).toEqual([7]);
  });

  it('takes tensors and { values, shape } arrays, and names what does not fit', async () => {
    const data = await taskOf({
      data: () => ({
        train: {
          xs: { values: [1, 2, 3, 4, 5, 6], shape: [2, 3] },
          ys: { values: Uint8Array.of(1, 0), shape: [2] },
        },
        test: { xs: tf.tensor3d([1, 2, 3, 4, 5, 6], [1, 2, 3]), ys: tf.tensor2d([0.5, 1], [1, 2]) },
      }),
    }).loadData();
    expect(data.train).toEqual({
      count: 2,
      features: { values: Float32Array.of(1, 2, 3, 4, 5, 6), sampleShape: [3] },
      labels: { values: Uint8Array.of(1, 0), sampleShape: [] },
    });
    expect(data.test?.features.sampleShape).toEqual([2, 3]);
    expect(data.test?.labels).toEqual({ values: Float32Array.of(0.5, 1), sampleShape: [2] });
    expect(data.validation).toBeUndefined();

    const failing = async (train: unknown) => taskOf({ data: () => ({ train }) as never }).loadData();
    await expect(failing({ xs: tf.zeros([3, 2]), ys: tf.zeros([2]) })).rejects.toThrow(
      callosumError('TASK_INVALID', 'task demo: data train has 3 samples in xs but 2 in ys'),
    );
    await expect(failing({ xs: tf.zeros([2, 2], 'bool'), ys: tf.zeros([2]) })).rejects.toThrow(
      callosumError(
        'TASK_INVALID',
        'data train.xs is a bool tensor; features and labels must be float32 or int32',
      ),
    );
    await expect(failing({ xs: { values: [1, 2, 3], shape: [2, 2] }, ys: tf.zeros([2]) })).rejects.toThrow(
      callosumError('TASK_INVALID', 'data train.xs has 3 values, its shape [2, 2] needs 4'),
    );
    await expect(failing({ xs: tf.zeros([2, 2]), ys: tf.scalar(1) })).rejects.toThrow(
      callosumError('TASK_INVALID', 'data train.ys is a scalar; its first dimension must be the samples'),
    );
    await expect(failing({ xs: tf.zeros([0, 2]), ys: tf.zeros([0]) })).rejects.toThrow(
      callosumError('TASK_INVALID', 'data train has no samples'),
    );
    await expect(failing({ xs: [[1, 2]], ys: [1] })).rejects.toThrow(
      callosumError('TASK_INVALID', 'data train.xs must be a tf.Tensor or { values, shape }'),
    );
  });

  it('refuses nested arrays and non-numbers as values, saying what to give instead', async () => {
    const failing = async (train: unknown) => taskOf({ data: () => ({ train }) as never }).loadData();
    const nested = (shape: string) =>
      `values is a nested array; { values, shape } takes the values flat, sample after sample: give { values: values.flat(Infinity), shape: ${shape} }, or tf.tensor(values)`;
    await expect(
      failing({
        xs: {
          values: [
            [0, 1],
            [1, 0],
          ],
          shape: [2, 2],
        },
        ys: tf.zeros([2]),
      }),
    ).rejects.toThrow(callosumError('TASK_INVALID', `task demo: data train.xs.${nested('[2, 2]')}`));
    // One value per sample: Float32Array.from read these as [0, 1], and they trained.
    await expect(failing({ xs: tf.zeros([2, 3]), ys: { values: [[0], [1]], shape: [2] } })).rejects.toThrow(
      callosumError('TASK_INVALID', `task demo: data train.ys.${nested('[2, 1]')}`),
    );
    await expect(failing({ xs: { values: [1, '2'], shape: [1, 2] }, ys: tf.zeros([1]) })).rejects.toThrow(
      callosumError(
        'TASK_INVALID',
        'task demo: data train.xs.values[1] is "2" (a string); a number[] holds numbers',
      ),
    );
  });

  it("gives Keras's defaults (Adam at 0.001, constant rate, no shift), which a run's options override", () => {
    const plain = taskOf({});
    expect(plain.images).toBe(false);
    expect(plain.defaults).toMatchObject({
      optimizer: { name: 'adam' },
      learningRate: 0.001,
      schedule: { kind: 'constant' },
      maxShift: 0,
    });
    const tuned = taskOf({
      optimizer: { name: 'adam', learningRate: 0.01, beta1: 0.8 },
      epochs: 3,
      batchSize: 16,
    });
    const config = taskTrainingConfig(tuned, { batchSize: 32, seed: undefined }, false);
    expect(config).toMatchObject({
      optimizer: { name: 'adam', beta1: 0.8 },
      learningRate: 0.01,
      epochs: 3,
      batchSize: 32,
      seed: 1,
      maxShift: 0,
      model: { name: 'task:demo' },
    });
    expect(() => taskTrainingConfig(tuned, { maxShift: 1 }, false)).toThrow(
      callosumError('INVALID_ARGUMENT', 'task demo is not an image task, so it must be 0'),
    );
  });
});

describe('requireShiftFits', () => {
  const images = (rows: number, cols: number): SampleSet => ({
    count: 1,
    features: { values: new Float32Array(rows * cols), sampleShape: [rows, cols] },
    labels: { values: Int32Array.of(0), sampleShape: [] },
  });
  const imageTask = taskFromDefinition(defineTask({ ...valid, images: true }), 'digits');

  it("refuses a shift as large as the images' smaller side, naming their size, and takes a smaller one", () => {
    expect(() => requireShiftFits(imageTask, images(4, 6), 4)).toThrow(
      callosumError(
        'INVALID_ARGUMENT',
        "maxShift (--max-shift) 4 does not fit task digits's images of 4×6: it must be less than 4",
      ),
    );
    expect(() => requireShiftFits(imageTask, images(4, 6), 3)).not.toThrow();
    // Not an image task: taskTrainingConfig refuses any shift before the data are loaded.
    expect(() =>
      requireShiftFits(taskFromDefinition(defineTask(valid), 'demo'), images(1, 3), 0),
    ).not.toThrow();
  });
});

describe('loadTaskModule', () => {
  afterAll(() => {
    delete (globalThis as { callosumFixtureTask?: unknown }).callosumFixtureTask;
  });

  it("loads a module's defineTask default export, named after its directory when the file is task.mjs", async () => {
    (globalThis as { callosumFixtureTask?: DefinedTask }).callosumFixtureTask = defineTask(valid);
    const task = await loadTaskModule(join(FIXTURES, 'from-global', 'task.mjs'));
    expect(task.name).toBe('from-global');
    expect(task.loss).toBe('sparseCategoricalCrossentropy');
    const built = task.buildModel(1);
    expect(built.outputs[0]?.shape).toEqual([null, 2]);
    built.dispose();
  });

  it.each([
    ['no-default.mjs', 'has no default export; it must `export default defineTask({ model, data, loss })`'],
    ['plain-object.mjs', 'its default export is not the result of defineTask from @callosum/core'],
    ['throws-on-load.mjs', 'cannot be loaded: cannot find ./spam.csv'],
    ['missing.mjs', 'cannot be loaded:'],
  ])('refuses %s with TASK_INVALID, naming the module and the problem', async (file, message) => {
    const path = join(FIXTURES, file);
    await expect(loadTaskModule(path)).rejects.toThrow(
      callosumError('TASK_INVALID', `task module ${path}`, message),
    );
  });

  it('refuses a module with a syntax error, naming the module', async () => {
    // Written here rather than kept as a fixture: the linter would refuse to parse it.
    const path = join(scratch, 'broken.mjs');
    await writeFile(path, "export default defineTask({ model: () => , loss: 'mse' });\n");
    const error = await loadTaskModule(path).catch((thrown: unknown) => thrown);
    expect(error).toMatchObject({ name: 'CallosumError', code: 'TASK_INVALID' });
    // The parser's own words follow: Node says "Unexpected token ','", vitest's loader "Parse failure".
    expect((error as Error).message).toMatch(
      new RegExp(`^task module ${resolve(path)} cannot be loaded: (Unexpected token|Parse failure)`),
    );
  });
});
