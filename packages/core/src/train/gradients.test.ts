import * as tf from '@tensorflow/tfjs-core';
import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { sliceBatch } from '../data/samples.js';
import { buildModel } from '../models/index.js';
import { parameterLayout, readFlatWeights, writeFlatWeights } from '../params/layout.js';
import { evaluateInChunks } from './evaluate.js';
import { computeGradients, evaluateBatch } from './gradients.js';
import { builtinTaskModel, randomBatch } from './test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('models and flat parameters', () => {
  it('builds the reference cnn with exactly 693,962 parameters', () => {
    const model = buildModel({ name: 'cnn' });
    const layout = parameterLayout(model);
    expect(model.countParams()).toBe(693_962);
    expect(layout.totalSize).toBe(693_962);
    expect(layout.entries.map((entry) => entry.shape)).toEqual([
      [3, 3, 1, 32],
      [32],
      [5408, 128],
      [128],
      [128, 10],
      [10],
    ]);
    model.dispose();
  });

  it('gives identical initial weights for the same seed and different ones for another seed', () => {
    const [a, b, c] = [1, 1, 2].map((seed) => buildModel({ name: 'lenet5' }, { seed }));
    const [wa, wb, wc] = [a, b, c].map((model) => readFlatWeights(model!));
    expect(wa).toEqual(wb);
    expect(wa).not.toEqual(wc);
    for (const model of [a, b, c]) model!.dispose();
  });

  it('round-trips weights through a flat vector and rejects a wrong length', () => {
    const model = buildModel({ name: 'mlp', options: { hidden: [16] } });
    const flat = readFlatWeights(model).map((_, index) => index / 1000);
    writeFlatWeights(model, flat);
    expect(readFlatWeights(model)).toEqual(flat);
    expect(() => writeFlatWeights(model, flat.subarray(1))).toThrow(/SHAPE_MISMATCH|parameters/);
    model.dispose();
  });

  it('rejects unknown models and unknown options by name', () => {
    expect(() => buildModel({ name: 'resnet' })).toThrow(/unknown model "resnet".*cnn/);
    expect(() => buildModel({ name: 'mlp', options: { hiden: [3] } })).toThrow(/no option "hiden"/);
    expect(() => buildModel({ name: 'cnn', options: { filters: 8 } })).toThrow(/no option "filters"/);
  });
});

describe('computeGradients', () => {
  it('computes the summed cross-entropy of the softmax output, and counts correct predictions', () => {
    const taskModel = builtinTaskModel({ name: 'mlp', options: { hidden: [32] } }, 3);
    const { model } = taskModel;
    const batch = randomBatch(12, 1);
    const result = computeGradients(taskModel, batch);
    const probabilities = tf
      .tidy(() => model.predict(tf.tensor(batch.features, [12, 28, 28, 1])) as tf.Tensor)
      .arraySync() as number[][];
    let expectedLoss = 0;
    let expectedCorrect = 0;
    probabilities.forEach((row, i) => {
      const label = batch.labels[i] as number;
      expectedLoss -= Math.log(row[label] as number);
      if (row.indexOf(Math.max(...row)) === label) expectedCorrect += 1;
    });
    expect(result.lossSum).toBeCloseTo(expectedLoss, 3);
    expect(result.correct).toBe(expectedCorrect);
    expect(result.count).toBe(12);
    expect(result.metricSums).toEqual([]);
    expect(evaluateBatch(taskModel, batch)).toEqual({
      lossSum: expect.closeTo(expectedLoss, 3),
      correct: expectedCorrect,
      metricSums: [],
      count: 12,
    });
    model.dispose();
  });

  it('matches finite differences of the loss on sampled parameters', () => {
    const taskModel = builtinTaskModel({ name: 'mlp', options: { hidden: [8] } }, 5);
    const { model } = taskModel;
    const batch = randomBatch(6, 2);
    const { gradient } = computeGradients(taskModel, batch);
    const weights = readFlatWeights(model);
    const lossAt = (flat: Float32Array) => {
      writeFlatWeights(model, flat);
      return evaluateBatch(taskModel, batch).lossSum;
    };
    const epsilon = 1e-3;
    for (const index of [0, 100, 4000, 6279, weights.length - 1]) {
      const plus = weights.slice();
      const minus = weights.slice();
      plus[index] = (plus[index] as number) + epsilon;
      minus[index] = (minus[index] as number) - epsilon;
      const numeric = (lossAt(plus) - lossAt(minus)) / (2 * epsilon);
      // float32 loss and relu kinks limit agreement to about a percent
      expect(Math.abs((gradient[index] as number) - numeric)).toBeLessThan(
        0.02 * Math.max(Math.abs(numeric), 0.05),
      );
    }
    model.dispose();
  });

  it('is additive over shards: the gradient of a batch is the sum of its parts', () => {
    const taskModel = builtinTaskModel({ name: 'cnn' }, 7);
    const { model } = taskModel;
    const batch = randomBatch(10, 3);
    const whole = computeGradients(taskModel, batch);
    const parts = [sliceBatch(batch, 0, 3), sliceBatch(batch, 3, 10)].map((part) =>
      computeGradients(taskModel, part),
    );
    const summed = parts[0]!.gradient.map((value, i) => value + parts[1]!.gradient[i]!);
    const scale = whole.gradient.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
    const worst = summed.reduce((max, value, i) => Math.max(max, Math.abs(value - whole.gradient[i]!)), 0);
    expect(worst / scale).toBeLessThan(1e-5);
    expect(parts[0]!.lossSum + parts[1]!.lossSum).toBeCloseTo(whole.lossSum, 3);
    expect(parts[0]!.correct + parts[1]!.correct).toBe(whole.correct);
    model.dispose();
  });

  it('evaluates a shard larger than a chunk to the same totals in chunks as in one pass', () => {
    const taskModel = builtinTaskModel({ name: 'mlp', options: { hidden: [8] } }, 6);
    const { model } = taskModel;
    const batch = randomBatch(1_100, 5); // three chunks, the last one short
    const whole = evaluateBatch(taskModel, batch);
    const chunked = evaluateInChunks(taskModel, batch);
    expect(chunked.count).toBe(1_100);
    expect(chunked.correct).toBe(whole.correct);
    expect(chunked.lossSum).toBeCloseTo(whole.lossSum, 2);
    model.dispose();
  });

  it('leaves no tensors behind', () => {
    const taskModel = builtinTaskModel({ name: 'lenet5' });
    const { model } = taskModel;
    const batch = randomBatch(4, 4);
    computeGradients(taskModel, batch);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      computeGradients(taskModel, batch);
      evaluateBatch(taskModel, batch);
    }
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('rejects a batch whose arrays do not match its count', () => {
    const taskModel = builtinTaskModel({ name: 'mlp' });
    const { model } = taskModel;
    const batch = randomBatch(4, 5);
    expect(() => computeGradients(taskModel, { ...batch, count: 5 })).toThrow(
      /batch of 5 needs 3920 feature values for the model's input \[28, 28, 1\], got 3136/,
    );
    expect(() => computeGradients(taskModel, { ...batch, labels: batch.labels.subarray(0, 3) })).toThrow(
      /batch of 4 samples has 3 label values/,
    );
    model.dispose();
  });
});
