// The reference "plain tfjs" evaluation of a task module: builds the task's model, loads its data and
// trains it with tfjs's own model.compile + model.fit in this one process (no coordinator, no workers),
// then evaluates on the test set and prints the loss, the metrics and the time taken. A figure that
// Callosum reports for a task can be compared with what this prints for the same task.
//
// Build @callosum/core first (pnpm build, or pnpm --filter @callosum/core build), then, from the
// repository root:
//   node examples/tools/check-task.mjs examples/mnist-cnn/task.mjs [options]
// Options:
//   --backend wasm|cpu   tfjs backend (default wasm, with @callosum/core's training kernels)
//   --epochs N           default: the task's epochs, else 2
//   --batch-size N       default: the task's batchSize, else 128
//   --seed N             passed to the model factory (default 1)
//   --limit N            train on the first N training samples only (a quick smoke run)
//   --confusion          also print the test set's confusion matrix (classifiers with softmax outputs)
//   --json               also print the summary as one JSON line
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as core from '@callosum/core';
import * as tfc from '@tensorflow/tfjs-core';

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    backend: { type: 'string', default: 'wasm' },
    epochs: { type: 'string' },
    'batch-size': { type: 'string' },
    seed: { type: 'string', default: '1' },
    limit: { type: 'string' },
    confusion: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node examples/tools/check-task.mjs <task.mjs> [--backend wasm|cpu] [--epochs N] …');
  process.exit(2);
}

const taskPath = resolve(positionals[0]);
const task = (await import(pathToFileURL(taskPath).href)).default;
if (task === undefined) throw new Error(`${taskPath} has no default export`);

const backend = await core.initBackend(flags.backend);
const seed = Number(flags.seed);
const epochs = Number(flags.epochs ?? task.epochs ?? 2);
const batchSize = Number(flags['batch-size'] ?? task.batchSize ?? 128);
const metricNames = task.metrics ?? [];

/** A tf.Tensor as given, or one made from { values, shape } (a Uint8Array becomes int32, as in tfjs). */
function toTensor(value) {
  if (value instanceof tfc.Tensor) return value;
  const { values, shape } = value;
  return values instanceof Float32Array
    ? tfc.tensor(values, shape, 'float32')
    : tfc.tensor(values, shape, 'int32');
}

/**
 * Features and labels as tensors. tfjs's own losses want float labels (its sparseCategoricalCrossentropy
 * floors them and throws on int32), so integer labels are cast here; Callosum has to do the same.
 */
function toSet(set) {
  if (set === undefined) return undefined;
  const ys = toTensor(set.ys);
  return { xs: toTensor(set.xs), ys: ys.dtype === 'float32' ? ys : tfc.cast(ys, 'float32') };
}

/** The contract's optimizer spellings as a tfjs optimizer; learning rates default as in Keras. */
function makeOptimizer(spec = 'adam') {
  const { name, learningRate, momentum } = typeof spec === 'string' ? { name: spec } : spec;
  switch (name) {
    case 'adam':
      return tfc.train.adam(learningRate ?? 0.001);
    case 'sgd':
      return tfc.train.sgd(learningRate ?? 0.01);
    case 'momentum':
      return tfc.train.momentum(learningRate ?? 0.01, momentum ?? 0.9);
    default:
      throw new Error(`unknown optimizer "${name}"`);
  }
}

function describe(set) {
  return set === undefined ? 'none' : `${set.xs.shape[0]} samples, xs ${set.xs.dtype} [${set.xs.shape}]`;
}

function labelsOf(ys) {
  const dtype = ys instanceof tfc.Tensor ? ys.dtype : ys.values.constructor.name;
  return `${dtype} [${ys.shape}]`;
}

function round(value) {
  return Number(value.toPrecision(6));
}

let started = performance.now();
const data = await task.data();
const dataSeconds = (performance.now() - started) / 1000;
let train = toSet(data.train);
const validation = toSet(data.validation);
const test = toSet(data.test);
if (flags.limit !== undefined) {
  const limit = Math.min(Number(flags.limit), train.xs.shape[0]);
  train = { xs: tfc.slice(train.xs, 0, limit), ys: tfc.slice(train.ys, 0, limit) };
}

const model = task.model({ seed });
model.compile({ optimizer: makeOptimizer(task.optimizer), loss: task.loss, metrics: metricNames });
console.log(`task ${taskPath}`);
console.log(
  `backend ${backend.backend} (${backend.reason}); seed ${seed}; ${model.countParams()} parameters`,
);
console.log(`data() took ${dataSeconds.toFixed(2)} s`);
console.log(`  train: ${describe(train)}; ys as given: ${labelsOf(data.train.ys)}`);
console.log(`  validation: ${describe(validation)}`);
console.log(`  test: ${describe(test)}`);
console.log(`fit: ${epochs} epochs, batch ${batchSize}, loss ${task.loss}, metrics [${metricNames}]`);

started = performance.now();
const history = await model.fit(train.xs, train.ys, {
  epochs,
  batchSize,
  shuffle: true,
  validationData: validation === undefined ? undefined : [validation.xs, validation.ys],
  verbose: 0,
  callbacks: {
    onEpochEnd: (epoch, logs) => {
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const shown = Object.entries(logs).map(([key, value]) => `${key} ${value.toFixed(4)}`);
      console.log(`  epoch ${epoch + 1}/${epochs}  ${shown.join('  ')}  (${seconds} s)`);
    },
  },
});
const fitSeconds = (performance.now() - started) / 1000;

const evaluated = test ?? validation;
let testLoss;
const testMetrics = {};
if (evaluated !== undefined) {
  started = performance.now();
  const results = [model.evaluate(evaluated.xs, evaluated.ys, { batchSize: 512 })].flat();
  const values = await Promise.all(results.map(async (result) => (await result.data())[0]));
  testLoss = values[0];
  metricNames.forEach((name, index) => {
    testMetrics[name] = values[index + 1];
  });
  const which = test === undefined ? 'validation' : 'test';
  const shown = Object.entries(testMetrics).map(([name, value]) => `${name} ${value.toFixed(4)}`);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`${which}: loss ${testLoss.toFixed(4)}  ${shown.join('  ')}  (${seconds} s)`);
}
console.log(`fit took ${fitSeconds.toFixed(1)} s`);

/**
 * Rows: true class (class index, argmax of one-hot labels, or 0/1); columns: predicted class (argmax, or
 * a single sigmoid output at 0.5).
 */
async function confusionMatrix({ xs, ys }) {
  const outputs = model.outputs[0].shape.at(-1);
  const binary = outputs === 1;
  const predicted = await tfc
    .tidy(() => {
      const probabilities = model.predict(xs, { batchSize: 512 });
      return binary ? tfc.greaterEqual(tfc.reshape(probabilities, [-1]), 0.5) : tfc.argMax(probabilities, -1);
    })
    .data();
  const labels = ys.rank === 2 && ys.shape[1] > 1 ? await tfc.argMax(ys, -1).data() : await ys.data();
  const classes = binary ? 2 : outputs;
  const matrix = Array.from({ length: classes }, () => new Array(classes).fill(0));
  labels.forEach((label, index) => {
    matrix[label][predicted[index]] += 1;
  });
  return matrix;
}

if (flags.confusion && evaluated !== undefined) {
  const matrix = await confusionMatrix(evaluated);
  console.log('confusion (rows: true class, columns: predicted):');
  matrix.forEach((row, label) => {
    console.log(`  ${String(label).padStart(2)}: ${row.map((n) => String(n).padStart(5)).join('')}`);
  });
}

if (flags.json) {
  const summary = {
    task: taskPath,
    backend: backend.backend,
    seed,
    epochs,
    batchSize,
    trainSamples: train.xs.shape[0],
    parameters: model.countParams(),
    dataSeconds: round(dataSeconds),
    fitSeconds: round(fitSeconds),
    history: Object.fromEntries(Object.entries(history.history).map(([k, v]) => [k, v.map(round)])),
    testLoss: testLoss === undefined ? undefined : round(testLoss),
    testMetrics: Object.fromEntries(Object.entries(testMetrics).map(([k, v]) => [k, round(v)])),
  };
  console.log(JSON.stringify(summary));
}
