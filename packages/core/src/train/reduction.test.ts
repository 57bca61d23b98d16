import * as tf from '@tensorflow/tfjs-core';
import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { type SampleBatch, sliceBatch } from '../data/samples.js';
import type { TaskModel } from '../task/task.js';
import { assertFiniteShard } from './reduce.js';
import { type Reduction, reductionFor } from './reduction.js';
import { builtinTaskModel } from './test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Pixels and labels that vary enough for float32 sums to round differently in another order. */
function batchOf(count: number): SampleBatch {
  return {
    features: Float32Array.from({ length: count * 784 }, (_, i) => ((i * 7919) % 1021) / 1021),
    labels: Int32Array.from({ length: count }, (_, i) => (i * 7) % 10),
    count,
  };
}

const model = () => builtinTaskModel({ name: 'mlp', options: { hidden: [16] } }, 3);

/** One step of `batch` on `parts` simulated workers, each shard computed on its own slice. */
function meanOnWorkers(reduction: Reduction, batch: SampleBatch, parts: number): number[] {
  const net = model();
  const { layout } = net;
  const plan = reduction.plan(batch.count, parts);
  reduction.begin(plan);
  // Each "worker" has its own reduction (from the same settings), as a real one does.
  const worker = reductionFor(reduction.settings, layout.totalSize);
  // Added in reverse: arrival order must not matter.
  for (const [index, { start, end }] of [...plan.shards.entries()].reverse()) {
    const result = worker.computeShard(net, sliceBatch(batch, start, end));
    const copy = { ...result, gradient: result.gradient.slice() };
    assertFiniteShard(copy, index, layout.totalSize);
    reduction.add(index, copy);
  }
  const mean = Array.from(reduction.finish().meanGradient);
  net.model.dispose();
  return mean;
}

describe('reductionFor', () => {
  // The next two tests check the same facts of each reduction, in the same form on purpose.
  it('chooses the ordered shard sum without a micro-batch size: one even shard per part, no welcome settings', () => {
    const reduction = reductionFor({}, 10);
    expect(reduction.settings).toEqual({});
    expect(reduction.identicalAtAnyWorkerCount).toBe(false);
    expect(reduction.plan(10, 3).shards).toEqual([
      { start: 0, end: 4, part: 0 },
      { start: 4, end: 7, part: 1 },
      { start: 7, end: 10, part: 2 },
    ]);
    // More parts than samples: no empty shards.
    expect(reduction.plan(2, 3).shards).toHaveLength(2);
  });

  it('chooses the micro-batch tree with one: tree nodes per part, the size sent in the welcome', () => {
    const reduction = reductionFor({ microBatchSize: 16 }, 10);
    expect(reduction.settings).toEqual({ microBatchSize: 16 });
    expect(reduction.identicalAtAnyWorkerCount).toBe(true);
    // 96 samples = 6 micro-batches on 3 parts: 5 tree nodes, [0,2) [2,3) [3,4) [4,5) [5,6).
    expect(reduction.plan(96, 3).shards).toEqual([
      { start: 0, end: 32, part: 0 },
      { start: 32, end: 48, part: 1 },
      { start: 48, end: 64, part: 1 },
      { start: 64, end: 80, part: 2 },
      { start: 80, end: 96, part: 2 },
    ]);
  });

  it('with micro-batches, a step gives the same mean to the last bit on 1, 2, 3 or 5 workers', () => {
    const batch = batchOf(37);
    const sizing = model();
    const reduction = reductionFor({ microBatchSize: 8 }, sizing.layout.totalSize);
    sizing.model.dispose();
    const means = [1, 2, 3, 5].map((parts) => meanOnWorkers(reduction, batch, parts));
    for (const mean of means.slice(1)) expect(mean).toEqual(means[0]);
  });

  it('refuses shards added before a step began, or not awaited, and a step missing one', () => {
    for (const settings of [{}, { microBatchSize: 2 }]) {
      const reduction = reductionFor(settings, 2);
      const result = { gradient: Float32Array.of(1, 2), lossSum: 0, correct: 0, metricSums: [], count: 2 };
      expect(() => reduction.add(0, result)).toThrow(/before the step began/);
      reduction.begin(reduction.plan(4, 2));
      reduction.add(0, result);
      expect(() => reduction.add(0, result)).toThrow(/not awaited/);
      expect(() => reduction.finish()).toThrow(/only 1 of 2/);
    }
  });

  it('combines pieces computed apart: with micro-batches bit-identical to the whole shard at any lane count', () => {
    const batch = batchOf(37);
    const net = model();
    const { layout } = net;
    const reduction = reductionFor({ microBatchSize: 8 }, layout.totalSize);
    const whole = reduction.computeShard(net, batch, new Float32Array(layout.totalSize));
    for (const lanes of [1, 2, 3, 4, 7]) {
      const combined = combinedFromPieces(reduction, net, batch, lanes);
      expect(Array.from(combined.gradient)).toEqual(Array.from(whole.gradient));
      expect(combined.count).toBe(37);
      expect(combined.correct).toBe(whole.correct);
    }
    net.model.dispose();
  });

  it('combines pieces computed apart: without micro-batches the same bits for the same lane count, close to one piece', () => {
    const batch = batchOf(37);
    const net = model();
    const { layout } = net;
    const reduction = reductionFor({}, layout.totalSize);
    const whole = reduction.computeShard(net, batch, new Float32Array(layout.totalSize));
    const two = combinedFromPieces(reduction, net, batch, 2);
    expect(Array.from(combinedFromPieces(reduction, net, batch, 2).gradient)).toEqual(
      Array.from(two.gradient),
    );
    expect(two.count).toBe(37);
    expect(two.lossSum).toBeCloseTo(whole.lossSum, 3);
    const scale = Math.max(...whole.gradient.map(Math.abs));
    for (const [i, value] of whole.gradient.entries()) {
      expect(Math.abs((two.gradient[i] as number) - value)).toBeLessThanOrEqual(1e-5 * scale);
    }
    net.model.dispose();
  });

  it('refuses to combine a shard with a piece missing', () => {
    const reduction = reductionFor({ microBatchSize: 2 }, 2);
    const result = { gradient: Float32Array.of(1, 2), lossSum: 0, correct: 0, metricSums: [], count: 2 };
    expect(() => reduction.combinePieces(reduction.plan(4, 2), [result], new Float32Array(2))).toThrow(
      /1 results for the 2 pieces/,
    );
  });
});

/** A shard's gradient from its pieces for `lanes` lanes, each computed on its own slice into its own buffer. */
function combinedFromPieces(reduction: Reduction, net: TaskModel, batch: SampleBatch, lanes: number) {
  const { layout } = net;
  const plan = reduction.plan(batch.count, lanes);
  const results = plan.shards.map(({ start, end }) =>
    reduction.computeShard(net, sliceBatch(batch, start, end), new Float32Array(layout.totalSize)),
  );
  return reduction.combinePieces(plan, results, new Float32Array(layout.totalSize));
}
