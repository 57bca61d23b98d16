import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ImageSet, loadMnist, loadModel, type MnistDataset, readFlatWeights } from '@callosum/core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator.js';
import { inlineWorker } from '../test-support/inline-worker.js';

// The coordinator gathers a step's samples while the last results of the step before are still out.
// A real coordinator with workers in this process over loopback. 112 training samples in batches of 32
// make epochs of 32, 32, 32 and 16 samples, so samples are gathered ahead across epochs (a new order,
// augmented as the new epoch says) and for a short batch (cut otherwise than the one before). With
// micro-batches the weights are the same at any worker count, so two workers (whose steps gather
// ahead) must end with one worker's weights (whose steps cannot: one shard) to the bit.
const TRAIN_SAMPLES = 112;
const training = {
  model: { name: 'mlp', options: { hidden: [16] } },
  batchSize: 32,
  microBatchSize: 8,
  epochs: 3,
  seed: 5,
  learningRate: 0.01,
  optimizer: { name: 'adam' },
  maxShift: 2,
};
let dataset: MnistDataset;
const outDirs: string[] = [];

function firstSamples(set: ImageSet, count: number): ImageSet {
  const pixels = set.rows * set.cols;
  return {
    ...set,
    count,
    images: set.images.subarray(0, count * pixels),
    labels: set.labels.subarray(0, count),
  };
}

beforeAll(async () => {
  const mnist = await loadMnist();
  dataset = { ...mnist, train: firstSamples(mnist.train, TRAIN_SAMPLES), test: firstSamples(mnist.test, 64) };
});
afterEach(async () => {
  await Promise.all(outDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

function sha256(weights: Float32Array): string {
  return createHash('sha256').update(weights).digest('hex');
}

/** The weights at the end of the run, trained by `workers` workers in this process. */
async function weightsWith(workers: number): Promise<Float32Array> {
  const outDir = await mkdtemp(join(tmpdir(), 'callosum-rounds-'));
  outDirs.push(outDir);
  const coordinator = await startCoordinator({
    outDir,
    dataset,
    training,
    minWorkers: workers,
    log: () => {},
  });
  for (let i = 0; i < workers; i++) void inlineWorker(coordinator.url, { name: `w${i}` });
  const result = await coordinator.result;
  expect(result.steps).toBe(12);
  const model = await loadModel(result.modelDir);
  const weights = readFlatWeights(model);
  model.dispose();
  return weights;
}

describe('samples gathered ahead of their step', () => {
  it('are the samples of that step: across epochs and short batches, two workers end with one worker’s weights to the bit', async () => {
    const one = await weightsWith(1);
    const two = await weightsWith(2);
    expect(sha256(two)).toBe(sha256(one));
  }, 120_000);
});
