import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../tf.js';
import { defineTask } from './define-task.js';
import {
  fingerprintDifference,
  fingerprintDigest,
  fingerprintOfTask,
  taskFingerprint,
} from './fingerprint.js';
import { taskFromDefinition } from './module-task.js';
import { instantiateTask, type Task } from './task.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/**
 * A functional model with BatchNormalization and Dropout, its initializers and its Dropout seeded from
 * the run's seed as defineTask asks; `hidden` is the width of its second Dense layer.
 */
function taskWith(hidden: number, loss = 'meanSquaredError'): Task {
  const definition = defineTask({
    model: ({ seed }) => {
      const input = tf.input({ shape: [6] });
      const a = tf.layers
        .dense({ units: 8, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) })
        .apply(input) as tf.SymbolicTensor;
      const b = tf.layers.batchNormalization().apply(a) as tf.SymbolicTensor;
      const c = tf.layers
        .dense({
          units: hidden,
          activation: 'relu',
          kernelInitializer: tf.initializers.heNormal({ seed: seed + 1 }),
        })
        .apply(tf.layers.dropout({ rate: 0.25, seed }).apply(b)) as tf.SymbolicTensor;
      const output = tf.layers
        .dense({ units: 1 })
        .apply(tf.layers.concatenate().apply([c, a])) as tf.SymbolicTensor;
      return tf.model({ inputs: input, outputs: output });
    },
    data: () => ({ train: { xs: tf.zeros([1, 6]), ys: tf.zeros([1, 1]) } }),
    loss,
    metrics: ['mae'],
  });
  return taskFromDefinition(definition, 'regression');
}

function fingerprintOf(task: Task, seed: number) {
  const taskModel = instantiateTask(task, seed);
  const fingerprint = taskFingerprint(task, taskModel);
  taskModel.model.dispose();
  return fingerprint;
}

describe('taskFingerprint', () => {
  it('is the same for two builds of the same factory, whose layers tfjs names differently', () => {
    const task = taskWith(16);
    const first = instantiateTask(task, 1);
    const second = instantiateTask(task, 1);
    expect(first.model.layers.map((layer) => layer.name)).not.toEqual(
      second.model.layers.map((layer) => layer.name),
    );
    const [a, b] = [first, second].map((taskModel) => taskFingerprint(task, taskModel));
    expect(a).toEqual(b);
    expect(fingerprintDifference(a, b)).toBeUndefined();
    // Plain JSON: what a worker's hello carries survives the wire.
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
    expect(JSON.stringify(a)).not.toMatch(/dense_Dense\d/);
    first.model.dispose();
    second.model.dispose();
  });

  it('depends on no run setting: the coordinator builds with the run seed, a worker before it knows it', () => {
    const task = taskWith(16);
    expect(fingerprintDifference(fingerprintOf(task, 0), fingerprintOf(task, 1))).toBeUndefined();
  });

  it('differs for a changed Dense width, and the difference names the path and both values', () => {
    const here = fingerprintOf(taskWith(16), 1);
    const there = fingerprintOf(taskWith(12), 1);
    expect(here).not.toEqual(there);
    // Layer 0 is the input, 1 the first Dense, 2 BatchNormalization, 3 Dropout, 4 the changed Dense.
    expect(fingerprintDifference(here, there, { here: 'on the coordinator', there: 'on worker w1' })).toBe(
      'layers[4].config.units: 16 on the coordinator, 12 on worker w1',
    );
  });

  it('differs for another loss, and names keys present on one side only', () => {
    const here = fingerprintOf(taskWith(16), 1);
    expect(fingerprintDifference(here, fingerprintOf(taskWith(16, 'meanAbsoluteError'), 1))).toBe(
      'loss: "meanSquaredError" here, "meanAbsoluteError" there',
    );
    expect(fingerprintDifference({ a: [1, 2] }, { a: [1, 2, 3] })).toBe('a[2]: absent here, 3 there');
    expect(fingerprintDifference({ a: { b: 1 } }, { a: {} })).toBe('a.b: 1 here, absent there');
  });
});

describe('taskFingerprint of what names cannot tell apart', () => {
  const dense = (units: number) => tf.layers.dense({ units, inputShape: [3] });

  it('tells two loss functions of the same name apart by their source', () => {
    const withLoss = (loss: (labels: tf.Tensor, predictions: tf.Tensor) => tf.Tensor) =>
      taskFromDefinition(
        defineTask({
          model: () => tf.sequential({ layers: [dense(1)] }),
          data: () => ({ train: { xs: tf.zeros([1, 3]), ys: tf.zeros([1, 1]) } }),
          loss,
        }),
        'custom',
      );
    const squared = withLoss(function myLoss(labels, predictions) {
      return tf.mean(tf.square(tf.sub(labels, predictions)), -1);
    });
    const absolute = withLoss(function myLoss(labels, predictions) {
      return tf.mean(tf.abs(tf.sub(labels, predictions)), -1);
    });
    expect(fingerprintDifference(fingerprintOfTask(squared), fingerprintOfTask(squared))).toBeUndefined();
    expect(fingerprintDifference(fingerprintOfTask(squared), fingerprintOfTask(absolute))).toMatch(
      /^loss: "myLoss \(source [0-9a-f]{16}\)" here, "myLoss \(source [0-9a-f]{16}\)" there$/,
    );
  });

  it('describes a nested model by its layers, so builds numbered differently by tfjs agree', () => {
    const nested = taskFromDefinition(
      defineTask({
        model: () => {
          const inner = tf.sequential({ layers: [dense(4), tf.layers.dense({ units: 2 })] });
          const input = tf.input({ shape: [3] });
          const output = tf.layers.dense({ units: 1 }).apply(inner.apply(input) as tf.SymbolicTensor);
          return tf.model({ inputs: input, outputs: output as tf.SymbolicTensor });
        },
        data: () => ({ train: { xs: tf.zeros([1, 3]), ys: tf.zeros([1, 1]) } }),
        loss: 'meanSquaredError',
      }),
      'nested',
    );
    // Another model built in between moves tfjs's name counters, as a second build on the coordinator does.
    tf.sequential({ layers: [dense(7)] }).dispose();
    const [first, second] = [fingerprintOfTask(nested), fingerprintOfTask(nested)];
    expect(fingerprintDifference(first, second)).toBeUndefined();
    expect(JSON.stringify(first)).toContain('"layers":[{"class":"Dense"');
  });

  it('has a short digest that differs when the fingerprint does', () => {
    const [narrow, wide] = [fingerprintOf(taskWith(12), 1), fingerprintOf(taskWith(16), 1)];
    expect(fingerprintDigest(narrow)).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprintDigest(narrow)).toBe(fingerprintDigest(fingerprintOf(taskWith(12), 2)));
    expect(fingerprintDigest(narrow)).not.toBe(fingerprintDigest(wide));
  });
});
