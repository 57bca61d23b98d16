import { join } from 'node:path';
import { buildModel, loadModel, parameterLayout, readFlatWeights, trainLocal } from '@callosum/core';
import { describe, expect, it } from 'vitest';
import {
  lastJsonLine,
  maxRelativeDifference,
  runCli,
  smallTestSetData,
  temporaryDirectory,
} from './processes.js';

// One synchronous step on N workers is one step on the whole global batch: after 5 steps with the same
// seed and global batch, a single process, 1 worker and 3 workers hold the same weights. Real coordinator
// and worker processes on loopback; all on the wasm backend.
const STEPS = 5;
const BATCH = 96;
const SEED = 7;
const LAYOUT = parameterLayout(buildModel({ name: 'cnn' }));
const LEARNING_RATE: Record<string, number> = { adam: 0.001, sgd: 0.1 };

const MICRO_BATCH = 16;

/** The weights after STEPS steps of `callosum train` on `workers` workers of `threads` compute threads. */
async function distributedWeights(
  workers: number,
  optimizer: string,
  microBatchSize?: number,
  threads = 1,
  topology: 'star' | 'ring' = 'star',
): Promise<Float32Array> {
  const out = await temporaryDirectory(`equivalence-${workers}`);
  const run = await runCli([
    'train',
    '--workers',
    String(workers),
    '--threads',
    String(threads),
    '--steps',
    String(STEPS),
    '--batch-size',
    String(BATCH),
    '--seed',
    String(SEED),
    '--optimizer',
    optimizer,
    '--lr',
    String(LEARNING_RATE[optimizer]),
    '--backend',
    'wasm',
    ...smallTestSetData(),
    '--out',
    out,
    '--json',
    '--topology',
    topology,
    ...(microBatchSize === undefined ? [] : ['--micro-batch-size', String(microBatchSize)]),
  ]);
  expect(run.code, run.stderr).toBe(0);
  const summary = lastJsonLine<{ steps: number; workers: number }>(run);
  expect(summary).toMatchObject({ steps: STEPS, workers });
  const model = await loadModel(join(out, 'model'));
  const weights = readFlatWeights(model);
  model.dispose();
  return weights;
}

async function localWeights(
  optimizer: string,
  steps = STEPS,
  microBatchSize?: number,
): Promise<Float32Array> {
  const local = await trainLocal({
    microBatchSize,
    maxSteps: steps,
    batchSize: BATCH,
    seed: SEED,
    optimizer: { name: optimizer },
    learningRate: LEARNING_RATE[optimizer] as number,
    backend: 'wasm',
    evaluate: false,
  });
  local.model.dispose();
  return local.weights;
}

describe('distributed training is the same computation as local training', () => {
  it('moves the weights at all (so that equal weights below mean something)', async () => {
    expect(
      maxRelativeDifference(await localWeights('sgd'), await localWeights('sgd', 1), LAYOUT),
    ).toBeGreaterThan(1e-3);
  });

  it('gives bit-identical weights for trainLocal and 1 worker (adam)', async () => {
    const [local, one] = [await localWeights('adam'), await distributedWeights(1, 'adam')];
    expect(maxRelativeDifference(one, local, LAYOUT)).toBe(0);
  }, 120_000);

  // Without micro-batches, tfjs sums each shard's gradient in float32 over fewer samples with 3
  // workers, so results differ from one process in the last bits. SGD passes those bits through
  // linearly (measured: 2.6e-6); Adam divides by sqrt(v) and so magnifies them where a gradient is
  // almost exactly zero (4e-5). Micro-batches (below) remove the difference altogether.
  // (One worker sums its shard as trainLocal does: the adam case above shows it to the bit.)
  // The ring reduces each chunk of the parameters at its owner in the star's own order, so even without
  // micro-batches its weights are the star's to the bit at the same worker count.
  it('gives the same weights for trainLocal and 3 workers within 1e-5, and to the bit in star and ring (sgd)', async () => {
    const local = await localWeights('sgd');
    const star = await distributedWeights(3, 'sgd');
    expect(maxRelativeDifference(star, local, LAYOUT)).toBeLessThanOrEqual(1e-5);
    expect(maxRelativeDifference(star, local, LAYOUT)).toBeGreaterThan(0);
    const ring = await distributedWeights(3, 'sgd', undefined, 1, 'ring');
    expect(maxRelativeDifference(ring, star, LAYOUT)).toBe(0);
  }, 240_000);

  // The micro-batch tree is kept across the ring's chunks: 1, 2 and 3 workers in the ring end with the
  // weights of trainLocal (and so of the star, above) to the last bit.
  it('gives bit-identical weights for trainLocal and 1, 2 and 3 workers in the ring with micro-batches (adam)', async () => {
    const local = await localWeights('adam', STEPS, MICRO_BATCH);
    for (const workers of [1, 2, 3]) {
      const ring = await distributedWeights(workers, 'adam', MICRO_BATCH, 1, 'ring');
      expect(maxRelativeDifference(ring, local, LAYOUT), `${workers} workers`).toBe(0);
    }
  }, 240_000);

  // 96 samples in micro-batches of 16: 6 micro-batches, which 3 workers share as 5 tree nodes (two of
  // them compute two nodes each), so the coordinator adds nodes from different workers. Each worker cuts
  // its shard among its threads along the same tree: 1 worker's 6 micro-batches go to 2 threads as two
  // nodes of 3; 3 workers' nodes of 2 micro-batches are split into single ones. (3 workers on 1 thread
  // each: coordinator.test.ts, where one of them is also SIGKILLed.)
  it('gives bit-identical weights for trainLocal, 1 worker on 1 and 2 threads and 3 workers on 2 threads with micro-batches (adam)', async () => {
    const local = await localWeights('adam', STEPS, MICRO_BATCH);
    const runs = {
      oneWorkerOneThread: await distributedWeights(1, 'adam', MICRO_BATCH, 1),
      oneWorkerTwoThreads: await distributedWeights(1, 'adam', MICRO_BATCH, 2),
      threeWorkersTwoThreads: await distributedWeights(3, 'adam', MICRO_BATCH, 2),
    };
    for (const [name, weights] of Object.entries(runs)) {
      expect(maxRelativeDifference(weights, local, LAYOUT), name).toBe(0);
    }
  }, 240_000);
});
