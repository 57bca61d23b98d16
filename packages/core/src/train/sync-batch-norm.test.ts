import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { type SampleBatch, sliceBatch } from '../data/samples.js';
import { type ParameterLayout, parameterLayout } from '../params/layout.js';
import { seedDropoutLayers, withSampleKeys } from '../task/dropout.js';
import { Objective } from '../task/objective.js';
import type { TaskModel } from '../task/task.js';
import * as tf from '../tf.js';
import {
  checkSynchronisable,
  computeGradients,
  computeShardAdjoint,
  computeShardMoments,
} from './gradients.js';
import {
  batchNormChannels,
  combineMoments,
  type ShardMoments,
  type SyncedStatistics,
  statisticsLength,
  sumAdjoints,
  synchronisableBatchNorm,
} from './sync-batch-norm.js';
import { randomGenerator } from './test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/**
 * conv 2×2 → BatchNormalization over channels → relu → flatten → dense 6 → BatchNormalization →
 * relu → Dropout → dense 2 (MSE): two normalised layers, the second depending on the first's statistics.
 * No bias before a BatchNormalization: its gradient is zero, so only rounding would be compared.
 */
function taskModel(): TaskModel {
  const init = (seed: number) => ({ kernelInitializer: tf.initializers.glorotUniform({ seed }) });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [4, 4, 2], filters: 3, kernelSize: 2, useBias: false, ...init(1) }),
      tf.layers.batchNormalization({ momentum: 0.9 }),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 6, useBias: false, ...init(2) }),
      tf.layers.batchNormalization({ momentum: 0.8 }),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dropout({ rate: 0.25 }),
      tf.layers.dense({ units: 2, ...init(3) }),
    ],
  });
  seedDropoutLayers(model);
  return regressionModel(model);
}

/** `model` as a task model of MSE regression on float32 data, its BatchNormalization synchronisable. */
function regressionModel(model: tf.LayersModel): TaskModel {
  synchronisableBatchNorm(model);
  return {
    model,
    layout: parameterLayout(model),
    objective: new Objective(model, 'meanSquaredError', []),
    conversion: { featureDtype: 'float32', labelDtype: 'float32' },
  };
}

/** Four samples of three features and three targets. */
const FOUR_SAMPLES: SampleBatch = {
  count: 4,
  features: Float32Array.from({ length: 12 }, (_, i) => i / 7),
  labels: Float32Array.from({ length: 12 }, (_, i) => i % 3),
};

function batchOf(count: number, seed: number): SampleBatch {
  const next = randomGenerator(seed);
  return {
    count,
    features: Float32Array.from({ length: count * 32 }, () => next() * 3 - 1),
    labels: Float32Array.from({ length: count * 2 }, () => next() * 2 - 1),
    keys: Uint32Array.from({ length: count }, (_, index) => 1000 + index),
  };
}

/** Cuts the batch at `cuts` and runs every pass of a synchronised step over the shards, as a run does. */
function synchronisedGradient(model: TaskModel, batch: SampleBatch, cuts: number[]): Float64Array {
  const bounds = [0, ...cuts, batch.count];
  const shards = bounds.slice(1).map((end, index) => sliceBatch(batch, bounds[index] as number, end));
  const channels = batchNormChannels(model.model);
  const statistics = new Float32Array(statisticsLength(channels));
  for (let layer = 0; layer < channels.length; layer++) {
    const moments: ShardMoments[] = shards.map((shard) =>
      computeShardMoments(model, shard, { kind: 'moments', layer, statistics }),
    );
    combineMoments(moments, channels, layer, statistics);
  }
  const adjoints = new Float32Array(statistics.length);
  for (let layer = channels.length - 1; layer >= 0; layer--) {
    const parts = shards.map((shard) =>
      computeShardAdjoint(model, shard, {
        kind: 'adjoint',
        layer,
        statistics,
        adjoints,
        samples: batch.count,
      }),
    );
    sumAdjoints(parts, channels, layer, adjoints);
  }
  const synced: SyncedStatistics = { statistics, adjoints, samples: batch.count };
  return summed(shards.map((shard) => computeGradients(model, shard, undefined, synced).gradient));
}

function summed(vectors: Float32Array[]): Float64Array {
  const total = new Float64Array(vectors[0]?.length ?? 0);
  for (const vector of vectors) {
    vector.forEach((value, index) => {
      total[index] = (total[index] as number) + value;
    });
  }
  return total;
}

/** Per layout entry, the largest difference relative to the entry's largest magnitude; the worst entry. */
function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>, layout: ParameterLayout): number {
  let worst = 0;
  for (const { offset, size } of layout.entries) {
    let difference = 0;
    let scale = 0;
    for (let i = offset; i < offset + size; i++) {
      difference = Math.max(difference, Math.abs((a[i] as number) - (b[i] as number)));
      scale = Math.max(scale, Math.abs(b[i] as number));
    }
    if (scale > 0) worst = Math.max(worst, difference / scale);
  }
  return worst;
}

describe('synchronised BatchNormalization', () => {
  it('gives the gradient and batch statistics of the whole batch from uneven shards, and leaks no tensors', () => {
    const model = taskModel();
    const batch = batchOf(12, 7);
    const whole = computeGradients(model, batch).gradient;
    const tensors = tf.memory().numTensors;
    const synchronised = synchronisedGradient(model, batch, [5, 9]);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(relativeDifference(synchronised, whole, model.layout)).toBeLessThanOrEqual(1e-5);
    // Each shard normalised with its own statistics (DDP without SyncBatchNorm) is far from it.
    const perShard = summed(
      [
        [0, 5],
        [5, 9],
        [9, 12],
      ].map(
        ([start, end]) => computeGradients(model, sliceBatch(batch, start as number, end as number)).gradient,
      ),
    );
    expect(relativeDifference(perShard, whole, model.layout)).toBeGreaterThan(1e-2);
    model.model.dispose();
  });

  it('leaves the moving statistics and the layers as tfjs has them outside a synchronised pass', () => {
    const model = taskModel();
    const batch = batchOf(8, 3);
    const weights = model.model.weights.map((weight) => Float32Array.from(weight.read().dataSync()));
    synchronisedGradient(model, batch, [3]);
    model.model.weights.forEach((weight, index) => {
      expect(Float32Array.from(weight.read().dataSync()), weight.name).toEqual(weights[index]);
    });
    // A plain training pass afterwards still moves the statistics (tfjs's own call).
    computeGradients(model, batch);
    const before = Float32Array.from(
      model.model.weights.map((w) => w.read().dataSync()).flatMap((d) => [...d]),
    );
    withSampleKeys(batch.keys, () =>
      tf.dispose(model.model.apply(tf.tensor(batch.features, [8, 4, 4, 2]), { training: true }) as tf.Tensor),
    );
    const after = Float32Array.from(
      model.model.weights.map((w) => w.read().dataSync()).flatMap((d) => [...d]),
    );
    expect(after).not.toEqual(before);
    model.model.dispose();
  });
});

describe('synchronised BatchNormalization of a branched model', () => {
  // A residual block: dense → BatchNormalization → relu → dense → BatchNormalization on the main path, a
  // projection dense → BatchNormalization on the shortcut, added. tfjs runs the branches in its own
  // order; the passes follow the layers' order in the model.
  it('gives the whole batch gradient', () => {
    const init = (seed: number) => ({
      useBias: false,
      kernelInitializer: tf.initializers.glorotUniform({ seed }),
    });
    const input = tf.input({ shape: [5] });
    const main = tf.layers
      .batchNormalization()
      .apply(
        tf.layers
          .dense({ units: 4, ...init(2) })
          .apply(
            tf.layers
              .activation({ activation: 'relu' })
              .apply(
                tf.layers.batchNormalization().apply(tf.layers.dense({ units: 6, ...init(1) }).apply(input)),
              ),
          ),
      ) as tf.SymbolicTensor;
    const shortcut = tf.layers
      .batchNormalization()
      .apply(tf.layers.dense({ units: 4, ...init(3) }).apply(input)) as tf.SymbolicTensor;
    const output = tf.layers
      .dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) })
      .apply(tf.layers.add().apply([main, shortcut])) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: output });
    const branched = regressionModel(model);
    const next = randomGenerator(11);
    const batch: SampleBatch = {
      count: 10,
      features: Float32Array.from({ length: 50 }, () => next() * 2 - 1),
      labels: Float32Array.from({ length: 20 }, () => next()),
    };
    expect(batchNormChannels(model)).toHaveLength(3);
    const whole = computeGradients(branched, batch).gradient;
    const synchronised = synchronisedGradient(branched, batch, [3, 7]);
    expect(relativeDifference(synchronised, whole, branched.layout)).toBeLessThanOrEqual(1e-5);
    model.dispose();
  });
});

describe('synchronised BatchNormalization of a layer applied twice', () => {
  it('is refused with the layer named, and the model still trains with its own statistics', () => {
    const input = tf.input({ shape: [3] });
    const norm = tf.layers.batchNormalization({ name: 'shared_norm' });
    const dense = tf.layers.dense({ units: 3, useBias: false });
    const twice = norm.apply(dense.apply(norm.apply(input))) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: twice });
    const twiceModel = regressionModel(model);
    const batch = FOUR_SAMPLES;
    const statistics = new Float32Array(statisticsLength(batchNormChannels(model)));
    const tensors = tf.memory().numTensors;
    expect(() => computeShardMoments(twiceModel, batch, { kind: 'moments', layer: 0, statistics })).toThrow(
      /shared_norm is applied more than once; synchronised BatchNormalization cannot train it/,
    );
    expect(tf.memory().numTensors).toBe(tensors);
    expect(() => checkSynchronisable(twiceModel, batch)).toThrow(/shared_norm is applied more than once/);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(computeGradients(twiceModel, batch).count).toBe(4);
    model.dispose();
  });
});

describe('checkSynchronisable', () => {
  it('passes a model whose layers a training pass calls once each, and leaks no tensors', () => {
    const input = tf.input({ shape: [3] });
    const normalised = tf.layers.batchNormalization().apply(input) as tf.SymbolicTensor;
    const output = tf.layers.dense({ units: 3 }).apply(normalised) as tf.SymbolicTensor;
    const fine = regressionModel(tf.model({ inputs: input, outputs: output }));
    const tensors = tf.memory().numTensors;
    expect(() => checkSynchronisable(fine, FOUR_SAMPLES)).not.toThrow();
    expect(tf.memory().numTensors).toBe(tensors);
    fine.model.dispose();
  });
});

describe('combineMoments', () => {
  it('adds shards in float64 into the mean and biased variance of all their elements', () => {
    const values = [[1, 2, 4], [10, 11], [], [-3, 5, 6, 7]];
    const shards: ShardMoments[] = values.map((shard) => {
      const mean = shard.length === 0 ? 0 : shard.reduce((a, b) => a + b, 0) / shard.length;
      return {
        mean: Float32Array.of(mean),
        squaredDeviations: Float32Array.of(shard.reduce((total, x) => total + (x - mean) ** 2, 0)),
        elements: shard.length,
      };
    });
    const statistics = new Float32Array(2);
    combineMoments(shards, [1], 0, statistics);
    const all = values.flat();
    const mean = all.reduce((a, b) => a + b, 0) / all.length;
    const variance = all.reduce((total, x) => total + (x - mean) ** 2, 0) / all.length;
    expect(statistics[0]).toBe(Math.fround(mean));
    expect(statistics[1]).toBe(Math.fround(variance));
  });
});
