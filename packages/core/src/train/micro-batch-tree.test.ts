import * as tf from '@tensorflow/tfjs-core';
import '../backends/cpu.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { sliceBatch } from '../data/samples.js';
import { evenShardSizes } from '../data/shards.js';
import type { GradientResult } from './batch.js';
import { DEFAULT_TRAINING_CONFIG } from './config.js';
import { computeGradients } from './gradients.js';
import {
  computeTreeGradients,
  microBatchCount,
  nodeSamples,
  shardNode,
  TreeGradientSum,
  type TreeNode,
  TreeSummation,
  treeNodesCovering,
  treeRoot,
  treeShards,
} from './micro-batch-tree.js';
import { OrderedGradientSum } from './reduce.js';
import { builtinTaskModel, randomBatch, randomGenerator } from './test-support.js';
import { TrainingState } from './training-state.js';

/** Every node of the tree over `leafCount` micro-batches, as "first+count". */
function allTreeNodes(leafCount: number): Set<string> {
  const nodes = new Set<string>();
  const visit = (first: number, count: number): void => {
    nodes.add(`${first}+${count}`);
    if (count < 2) return;
    const left = Math.ceil(count / 2);
    visit(first, left);
    visit(first + left, count - left);
  };
  visit(0, leafCount);
  return nodes;
}

/** Leaf gradients whose float32 sums depend on the order: magnitudes from 1e-6 to 1e6, both signs. */
function randomLeaves(leafCount: number, length: number, seed: number): GradientResult[] {
  const next = randomGenerator(seed);
  return Array.from({ length: leafCount }, (_, leaf) => ({
    gradient: Float32Array.from({ length }, () => (next() - 0.5) * 10 ** Math.floor(next() * 13 - 6)),
    lossSum: next() * 100,
    correct: leaf % 3,
    metricSums: [],
    count: 4,
  }));
}

/** What a worker sends for `node`: its micro-batches added along the tree. */
function nodeResult(leaves: readonly GradientResult[], node: TreeNode): GradientResult {
  const result = new TreeSummation(leaves[0]?.gradient.length ?? 0).sum(
    { first: 0, count: node.count },
    (part) => (part.count === 1 ? leaves[node.first + part.first] : undefined),
  );
  return { ...result, gradient: result.gradient.slice() };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('the micro-batch tree', () => {
  it('covers any range of micro-batches exactly, with nodes of the tree that cannot be merged', () => {
    for (let leafCount = 1; leafCount <= 20; leafCount++) {
      const tree = allTreeNodes(leafCount);
      for (let start = 0; start <= leafCount; start++) {
        for (let end = start; end <= leafCount; end++) {
          const nodes = treeNodesCovering(leafCount, start, end);
          let next = start;
          for (const node of nodes) {
            expect(tree.has(`${node.first}+${node.count}`)).toBe(true);
            expect(node.first).toBe(next);
            next += node.count;
          }
          expect(next).toBe(end);
          // Two neighbours that are together a node would have been taken as that node.
          for (let i = 1; i < nodes.length; i++) {
            const [a, b] = [nodes[i - 1] as TreeNode, nodes[i] as TreeNode];
            expect(tree.has(`${a.first}+${a.count + b.count}`) && a.count >= b.count).toBe(false);
          }
        }
      }
    }
  });

  it('gives each worker its even share of micro-batches, in one node when shares line up with the tree', () => {
    for (let leafCount = 1; leafCount <= 17; leafCount++) {
      for (let parts = 1; parts <= 6; parts++) {
        const shards = treeShards(leafCount, parts);
        const perPart = evenShardSizes(leafCount, parts).map((_, part) =>
          shards.filter((shard) => shard.part === part).reduce((sum, shard) => sum + shard.node.count, 0),
        );
        expect(perPart).toEqual(evenShardSizes(leafCount, parts));
      }
    }
    expect(treeShards(8, 4).map(({ node }) => node)).toEqual([
      { first: 0, count: 2 },
      { first: 2, count: 2 },
      { first: 4, count: 2 },
      { first: 6, count: 2 },
    ]);
    expect(treeShards(4, 3).map(({ node, part }) => [node.first, node.count, part])).toEqual([
      [0, 2, 0],
      [2, 1, 1],
      [3, 1, 2],
    ]);
    expect(microBatchCount(96, 16)).toBe(6);
    expect(microBatchCount(97, 16)).toBe(7);
  });

  it("finds a shard's node from its samples, also when its last micro-batch is short", () => {
    for (const samples of [96, 97, 100]) {
      for (const { node } of treeShards(microBatchCount(samples, 16), 3)) {
        expect(shardNode(nodeSamples(node, 16, samples), 16)).toEqual(node);
      }
    }
  });

  it('is refused by a run for a micro-batch size that is not an integer in 1..batch size', () => {
    const run = (microBatchSize: number) =>
      new TrainingState({ ...DEFAULT_TRAINING_CONFIG, microBatchSize }, new Float32Array(4), 1000);
    for (const size of [0, 129, 1.5]) {
      expect(() => run(size)).toThrow(
        `microBatchSize (at most the global batch size) must be an integer in 1..128, got ${size}`,
      );
    }
    expect(run(128).config.microBatchSize).toBe(128);
  });
});

describe('TreeGradientSum', () => {
  const length = 257;

  it('gives the same mean to the last bit however the tree is split among workers and in any arrival order', () => {
    for (const leafCount of [1, 2, 3, 6, 7, 8, 13]) {
      const leaves = randomLeaves(leafCount, length, leafCount);
      const sum = new TreeGradientSum(length);
      const means = [1, 2, 3, 4, 5].map((parts) => {
        const nodes = treeShards(leafCount, parts).map(({ node }) => node);
        sum.begin(leafCount, nodes);
        const order = nodes.map((_, index) => index).reverse();
        for (const index of order) sum.add(index, nodeResult(leaves, nodes[index] as TreeNode));
        const reduced = sum.reduce();
        expect(reduced.count).toBe(leafCount * 4);
        expect(reduced.correct).toBe(leaves.reduce((total, leaf) => total + leaf.correct, 0));
        return Array.from(reduced.meanGradient);
      });
      for (const mean of means.slice(1)) expect(mean).toEqual(means[0]);
    }
  });

  it('is needed: float32 shard sums added in shard order differ between worker counts on the same leaves', () => {
    const leafCount = 6;
    const leaves = randomLeaves(leafCount, length, 99);
    const ordered = new OrderedGradientSum(length);
    const means = [1, 2, 3].map((parts) => {
      let first = 0;
      const shards = evenShardSizes(leafCount, parts).map((count) => {
        // A shard computed in one piece adds its samples in float32, one after another.
        const gradient = new Float32Array(length);
        for (const leaf of leaves.slice(first, first + count)) {
          for (let i = 0; i < length; i++)
            gradient[i] = (gradient[i] as number) + (leaf.gradient[i] as number);
        }
        first += count;
        return { gradient, lossSum: 0, correct: 0, metricSums: [], count: count * 4 };
      });
      ordered.begin(shards.length);
      for (const [index, shard] of shards.entries()) ordered.add(index, shard);
      return Array.from(ordered.reduce().meanGradient);
    });
    expect(means[1]).not.toEqual(means[0]);
    expect(means[2]).not.toEqual(means[0]);
  });

  it('refuses a step whose float32 sum overflows, and shards that do not cover the tree', () => {
    const sum = new TreeGradientSum(2);
    const huge = (): GradientResult => ({
      gradient: Float32Array.of(3e38, 1),
      lossSum: 0,
      correct: 0,
      metricSums: [],
      count: 1,
    });
    sum.begin(2, [
      { first: 0, count: 1 },
      { first: 1, count: 1 },
    ]);
    sum.add(0, huge());
    sum.add(1, huge());
    expect(() => sum.reduce()).toThrow(/overflows float32/);
    expect(() => sum.begin(3, [{ first: 0, count: 2 }])).toThrow(/cover 2 of 3 micro-batches/);
    sum.begin(1, [treeRoot(1)]);
    expect(() => sum.reduce()).toThrow(/only 0 of 1/);
    sum.add(0, huge());
    expect(() => sum.add(0, huge())).toThrow(/not awaited/);
  });
});

describe('computeTreeGradients', () => {
  it('computes a batch in one piece or node by node on "workers" with the same bits', () => {
    const taskModel = builtinTaskModel({ name: 'mlp', options: { hidden: [16] } }, 3);
    const { model, layout } = taskModel;
    const batch = randomBatch(37, 5);
    const microBatchSize = 8;
    const leafCount = microBatchCount(batch.count, microBatchSize);
    const sum = new TreeGradientSum(layout.totalSize);
    const whole = computeTreeGradients(taskModel, batch, microBatchSize, new TreeSummation(layout.totalSize));
    sum.begin(leafCount, [treeRoot(leafCount)]);
    sum.add(0, whole);
    const local = Array.from(sum.reduce().meanGradient);

    for (const parts of [2, 3]) {
      const nodes = treeShards(leafCount, parts).map(({ node }) => node);
      sum.begin(leafCount, nodes);
      nodes.forEach((node, index) => {
        const { start, end } = nodeSamples(node, microBatchSize, batch.count);
        const shard = sliceBatch(batch, start, end);
        const worker = new TreeSummation(layout.totalSize);
        sum.add(index, computeTreeGradients(taskModel, shard, microBatchSize, worker));
      });
      expect(Array.from(sum.reduce().meanGradient)).toEqual(local);
    }

    // And it is the gradient of the batch: computed in one piece it agrees up to float32 rounding.
    const direct = computeGradients(taskModel, batch);
    let worst = 0;
    let scale = 0;
    direct.gradient.forEach((value, i) => {
      worst = Math.max(worst, Math.abs(value / batch.count - (local[i] as number)));
      scale = Math.max(scale, Math.abs(value / batch.count));
    });
    expect(worst / scale).toBeLessThan(1e-5);
    expect(whole.count).toBe(37);
    expect(whole.lossSum).toBeCloseTo(direct.lossSum, 3);
    expect(whole.correct).toBe(direct.correct);
    model.dispose();
  });
});
