import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { sliceBatch } from '../data/samples.js';
import { createOptimizer } from '../optim/registry.js';
import { parameterLayout, readFlatWeights } from '../params/layout.js';
import { Objective } from '../task/objective.js';
import type { TaskModel } from '../task/task.js';
import * as tf from '../tf.js';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.js';
import { resolveTrainingConfig } from './config.js';
import { computeGradients } from './gradients.js';
import { assertFiniteShard, reduceShardGradients } from './reduce.js';
import { reductionFor } from './reduction.js';
import { randomGenerator } from './test-support.js';
import { TrainingState } from './training-state.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const MOMENTUM = 0.9;
/** A power of two: count × statistic ÷ count is then exact, and the comparisons can be bit for bit. */
const COUNT = 8;

type Kind = 'dense' | 'conv';

/**
 * input → dense 5 relu → BatchNormalization → dense 3 frozen → dense 2 (MSE), or the same with a 3×3
 * input of 2 channels, a convolution and BatchNormalization over its channels (moments over 3 axes).
 * Each build gives the same weights; the moving statistics start away from 0 and 1.
 */
function buildModel(kind: Kind): { model: tf.LayersModel; norm: tf.layers.Layer } {
  const init = (seed: number) => ({ kernelInitializer: tf.initializers.glorotUniform({ seed }) });
  const norm = tf.layers.batchNormalization({
    momentum: MOMENTUM,
    movingMeanInitializer: tf.initializers.constant({ value: 0.25 }),
    movingVarianceInitializer: tf.initializers.constant({ value: 1.5 }),
  });
  const frozen = tf.layers.dense({ units: 3, ...init(3) });
  frozen.trainable = false;
  const first =
    kind === 'dense'
      ? [tf.layers.dense({ inputShape: [4], units: 5, activation: 'relu', ...init(1) })]
      : [tf.layers.conv2d({ inputShape: [3, 3, 2], filters: 4, kernelSize: 2, ...init(1) })];
  const model = tf.sequential({
    layers: [
      ...first,
      norm,
      ...(kind === 'conv' ? [tf.layers.flatten()] : []),
      frozen,
      tf.layers.dense({ units: 2, ...init(4) }),
    ],
  });
  return { model, norm };
}

function taskModelOf(model: tf.LayersModel, metrics: string[] = []): TaskModel {
  return {
    model,
    layout: parameterLayout(model),
    objective: new Objective(model, 'meanSquaredError', metrics),
    conversion: { featureDtype: 'float32', labelDtype: 'float32' },
  };
}

function batchOf(kind: Kind, seed: number, count = COUNT) {
  const next = randomGenerator(seed);
  const size = kind === 'dense' ? 4 : 18;
  return {
    count,
    features: Float32Array.from({ length: count * size }, () => next() * 4 - 1),
    labels: Float32Array.from({ length: count * 2 }, () => next() * 2 - 1),
  };
}

const inputShape = (kind: Kind) => (kind === 'dense' ? [COUNT, 4] : [COUNT, 3, 3, 2]);

const data = (tensor: tf.Tensor) => Float32Array.from(tensor.dataSync());

describe('parameterLayout of a model with BatchNormalization and a frozen layer', () => {
  it('puts the trainable weights first, then the statistics (with their momentum), then the frozen weights', () => {
    const { model } = buildModel('dense');
    const layout = parameterLayout(model);
    expect(layout.entries.map(({ role, shape, momentum }) => ({ role, shape, momentum }))).toEqual([
      { role: 'trainable', shape: [4, 5], momentum: undefined },
      { role: 'trainable', shape: [5], momentum: undefined },
      { role: 'trainable', shape: [5], momentum: undefined }, // gamma
      { role: 'trainable', shape: [5], momentum: undefined }, // beta
      { role: 'trainable', shape: [3, 2], momentum: undefined },
      { role: 'trainable', shape: [2], momentum: undefined },
      { role: 'statistic', shape: [5], momentum: MOMENTUM },
      { role: 'statistic', shape: [5], momentum: MOMENTUM },
      { role: 'frozen', shape: [5, 3], momentum: undefined },
      { role: 'frozen', shape: [3], momentum: undefined },
    ]);
    expect(layout.entries.slice(6, 8).map((entry) => entry.name.split('/').at(-1))).toEqual([
      'moving_mean',
      'moving_variance',
    ]);
    let offset = 0;
    for (const entry of layout.entries) {
      expect(entry.offset).toBe(offset);
      offset += entry.size;
    }
    expect(layout.totalSize).toBe(model.countParams());
    expect(layout.trainableSize).toBe(20 + 5 + 5 + 5 + 6 + 2);
    // The flat weights follow the layout: the statistics' initial values sit after the trainable prefix.
    const flat = readFlatWeights(model, layout);
    expect(Array.from(flat.subarray(layout.trainableSize, layout.trainableSize + 10))).toEqual([
      ...new Array(5).fill(0.25),
      ...new Array(5).fill(1.5),
    ]);
    model.dispose();
  });
});

describe.each(['dense', 'conv'] as const)('BatchNormalization statistics (%s)', (kind) => {
  it('computeGradients reports count × the batch mean and variance, zeros for frozen weights, and leaves the model as it was', () => {
    const { model, norm } = buildModel(kind);
    const taskModel = taskModelOf(model);
    const { layout } = taskModel;
    const batch = batchOf(kind, 5);
    const before = model.weights.map((weight) => data(weight.read()));
    const tensorsBefore = tf.memory().numTensors;

    const result = computeGradients(taskModel, batch);

    expect(tf.memory().numTensors).toBe(tensorsBefore);
    model.weights.forEach((weight, index) => {
      expect(data(weight.read()), weight.name).toEqual(before[index]);
    });
    expect(norm.getConfig().momentum).toBe(MOMENTUM);

    // The batch statistics as tfjs computes them in training: tf.moments of the layer's input.
    const axes = kind === 'dense' ? [0] : [0, 1, 2];
    const expected = tf.tidy(() => {
      const upTo = tf.model({ inputs: model.inputs, outputs: norm.input as tf.SymbolicTensor });
      const { mean, variance } = tf.moments(
        upTo.apply(tf.tensor(batch.features, inputShape(kind)), { training: true }) as tf.Tensor,
        axes,
      );
      return [data(tf.mul(mean, COUNT)), data(tf.mul(variance, COUNT))];
    });
    const statistics = layout.entries.filter((entry) => entry.role === 'statistic');
    expect(statistics).toHaveLength(2);
    statistics.forEach((entry, index) => {
      expect(result.gradient.subarray(entry.offset, entry.offset + entry.size)).toEqual(expected[index]);
    });
    const frozen = layout.entries.filter((entry) => entry.role === 'frozen');
    expect(frozen).toHaveLength(2);
    for (const entry of frozen) {
      expect(Array.from(result.gradient.subarray(entry.offset, entry.offset + entry.size))).toEqual(
        new Array(entry.size).fill(0),
      );
    }

    // The trainable part is the training-mode gradient (normalised with the batch's own statistics),
    // as tfjs computes it on a second build of the model.
    const { model: twin } = buildModel(kind);
    const variables = twin.trainableWeights.map((weight) => weight.read() as tf.Variable);
    const reference = tf.tidy(() => {
      const { grads } = tf.variableGrads(() => {
        const predictions = twin.apply(tf.tensor(batch.features, inputShape(kind)), {
          training: true,
        }) as tf.Tensor;
        return tf.sum(
          tf.metrics.meanSquaredError(tf.tensor2d(batch.labels, [COUNT, 2]), predictions),
        ) as tf.Scalar;
      }, variables);
      return variables.flatMap((variable) => Array.from(data(grads[variable.name] as tf.Tensor)));
    });
    const trainable = Array.from(result.gradient.subarray(0, layout.trainableSize));
    const scale = Math.max(...reference.map(Math.abs));
    expect(
      Math.max(...trainable.map((value, i) => Math.abs(value - (reference[i] as number)))) / scale,
    ).toBeLessThan(1e-6);
    model.dispose();
    twin.dispose();
  });

  it('TrainingState.applyStep moves the statistics as tfjs does, the trainable weights by the optimizer alone, and no frozen weight', () => {
    const { model } = buildModel(kind);
    const taskModel = taskModelOf(model);
    const { layout } = taskModel;
    const batch = batchOf(kind, 9);
    const config = resolveTrainingConfig({
      optimizer: { name: 'sgd' },
      learningRate: 0.1,
      schedule: { kind: 'constant' },
      batchSize: COUNT,
      maxShift: 0,
    });
    const initial = readFlatWeights(model, layout);
    const state = new TrainingState(config, initial, 100, layout);
    expect(state.optimizer.parameterCount).toBe(layout.trainableSize);
    const reduced = reduceShardGradients([computeGradients(taskModel, batch)]);
    state.applyStep(reduced);

    // tfjs's own update on a second build: one training-mode forward pass moves its statistics.
    const { model: twin, norm: twinNorm } = buildModel(kind);
    tf.tidy(() => {
      twin.apply(tf.tensor(batch.features, inputShape(kind)), { training: true });
    });
    const tfjsMoved = [twinNorm.getWeights()[2], twinNorm.getWeights()[3]].map((weight) =>
      data(weight as tf.Tensor),
    );
    const statistics = layout.entries.filter((entry) => entry.role === 'statistic');
    statistics.forEach((entry, index) => {
      const moved = state.weights.subarray(entry.offset, entry.offset + entry.size);
      expect(moved).toEqual(tfjsMoved[index]);
      // It moved: not still the initial value, and not the initial value minus lr × batch statistic.
      expect(moved).not.toEqual(initial.subarray(entry.offset, entry.offset + entry.size));
    });

    // The trainable prefix is exactly one SGD step on the trainable part of the mean gradient.
    const sgd = createOptimizer({ name: 'sgd' }, layout.trainableSize);
    const expectedTrainable = initial.slice(0, layout.trainableSize);
    sgd.step(expectedTrainable, reduced.meanGradient.subarray(0, layout.trainableSize), 0.1);
    expect(state.weights.subarray(0, layout.trainableSize)).toEqual(expectedTrainable);

    for (const entry of layout.entries.filter((e) => e.role === 'frozen')) {
      expect(state.weights.subarray(entry.offset, entry.offset + entry.size)).toEqual(
        initial.subarray(entry.offset, entry.offset + entry.size),
      );
    }
    model.dispose();
    twin.dispose();
  });
});

describe('BatchNormalization statistics across workers', () => {
  it('with micro-batches, the mean step (statistics included) has the same bits on 1, 2 or 3 workers, and averages the micro-batch statistics by samples', () => {
    const { model } = buildModel('dense');
    const taskModel = taskModelOf(model, ['mae']);
    const { layout } = taskModel;
    const batch = batchOf('dense', 13, 14); // micro-batches of 4, 4, 4 and 2 samples
    const microBatchSize = 4;
    const reduction = reductionFor({ microBatchSize }, layout.totalSize);
    const totals: number[][] = [];
    const means = [1, 2, 3].map((parts) => {
      const plan = reduction.plan(batch.count, parts);
      reduction.begin(plan);
      const worker = reductionFor(reduction.settings, layout.totalSize);
      for (const [index, { start, end }] of [...plan.shards.entries()].reverse()) {
        const result = worker.computeShard(taskModel, sliceBatch(batch, start, end));
        const copy = { ...result, gradient: result.gradient.slice() };
        assertFiniteShard(copy, index, layout.totalSize);
        reduction.add(index, copy);
      }
      const step = reduction.finish();
      totals.push([step.lossSum, ...step.metricSums, step.count]);
      return Float32Array.from(step.meanGradient);
    });
    expect(means[1]).toEqual(means[0]);
    expect(means[2]).toEqual(means[0]);
    // The loss and metric sums add up along the same tree: the same at any worker count.
    expect(totals[1]).toEqual(totals[0]);
    expect(totals[2]).toEqual(totals[0]);
    expect(totals[0]).toHaveLength(3);

    // Each micro-batch normalises with its own statistics; the step's statistic is their
    // sample-weighted mean.
    const statistics = layout.entries.filter((entry) => entry.role === 'statistic');
    const pieces = [0, 4, 8, 12].map((start) =>
      computeGradients(taskModel, sliceBatch(batch, start, Math.min(start + microBatchSize, batch.count))),
    );
    const perMicroBatch = pieces.map(({ gradient }) =>
      statistics.map((entry) => Array.from(gradient.subarray(entry.offset, entry.offset + entry.size))),
    );
    const [lossSum, maeSum, count] = totals[0] as [number, number, number];
    expect(count).toBe(14);
    expect(lossSum).toBeCloseTo(
      pieces.reduce((sum, piece) => sum + piece.lossSum, 0),
      4,
    );
    expect(maeSum).toBeCloseTo(
      pieces.reduce((sum, piece) => sum + (piece.metricSums[0] as number), 0),
      4,
    );
    statistics.forEach((entry, s) => {
      const expected = Array.from(
        { length: entry.size },
        (_, i) => perMicroBatch.reduce((sum, parts) => sum + (parts[s]?.[i] as number), 0) / batch.count,
      );
      const actual = Array.from(means[0]?.subarray(entry.offset, entry.offset + entry.size) ?? []);
      actual.forEach((value, i) => {
        expect(Math.abs(value - (expected[i] as number))).toBeLessThanOrEqual(
          1e-6 * Math.max(1, Math.abs(expected[i] as number)),
        );
      });
    });
    model.dispose();
  });
});

describe('checkpoints of a model with statistics', () => {
  it('restore with the layout and continue bit-identically; without it, the optimizer state does not fit', () => {
    const { model } = buildModel('dense');
    const taskModel = taskModelOf(model);
    const { layout } = taskModel;
    const config = resolveTrainingConfig({ optimizer: { name: 'adam' }, batchSize: COUNT, maxShift: 0 });
    const state = new TrainingState(config, readFlatWeights(model, layout), 100, layout);
    const steps = [1, 2, 3].map((seed) =>
      reduceShardGradients([computeGradients(taskModel, batchOf('dense', seed))]),
    );
    state.applyStep(steps[0]!);
    state.applyStep(steps[1]!);
    const checkpoint = decodeCheckpoint(encodeCheckpoint(state.checkpoint()), 'mem');
    expect(checkpoint.optimizer.slots.firstMoment).toHaveLength(layout.trainableSize);
    expect(checkpoint.optimizer.slots.secondMoment).toHaveLength(layout.trainableSize);
    expect(checkpoint.weights).toEqual(state.weights);

    const restored = TrainingState.restore(checkpoint, 100, layout);
    state.applyStep(steps[2]!);
    restored.applyStep(steps[2]!);
    expect(restored.weights).toEqual(state.weights);
    expect(restored.optimizer.exportState()).toEqual(state.optimizer.exportState());

    expect(() => TrainingState.restore(checkpoint, 100)).toThrow(
      expect.objectContaining({ code: 'SHAPE_MISMATCH' }),
    );
    model.dispose();
  });
});
