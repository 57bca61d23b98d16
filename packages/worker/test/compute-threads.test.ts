import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
// Real compute threads (the built dist/compute-thread.js: run `pnpm turbo run build` first), on wasm.
import {
  buildModel,
  type ComputeRequest,
  imageSamples,
  initBackend,
  loadMnist,
  PROTOCOL_VERSION,
  parameterLayout,
  readFlatWeights,
  type SampleSet,
  type Welcome,
} from '@callosum/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComputeThreads } from '../dist/compute-threads.js';
import { GradientService } from '../dist/gradient-service.js';
import { ThreadedGradientService } from '../dist/threaded-gradient-service.js';
import { mnistComputeRequest } from '../src/test-support.js';

const MODEL = { name: 'cnn' };
const SAMPLES = 45;
let train: SampleSet;
let parameterCount: number;
const weights: Float32Array[] = [];
const services: { dispose(): unknown }[] = [];

beforeAll(async () => {
  await initBackend('wasm');
  train = imageSamples((await loadMnist()).train);
  const model = buildModel(MODEL, { seed: 5 });
  parameterCount = parameterLayout(model).totalSize;
  // Two versions of the weights, so that a thread that kept the first would be caught.
  weights.push(
    readFlatWeights(model),
    readFlatWeights(model).map((value, i) => value * (1 + (i % 7) / 10)),
  );
  model.dispose();
});

afterAll(async () => {
  await Promise.all(services.map((service) => service.dispose()));
});

function welcome(microBatchSize?: number): Welcome {
  return {
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    workerId: 'w1',
    runId: 'run-1',
    model: MODEL,
    parameterCount,
    heartbeatIntervalMs: 1000,
    ...(microBatchSize === undefined ? {} : { microBatchSize }),
  };
}

function computeRequest(weightsVersion: number, first: number, count: number): ComputeRequest {
  const indices = Array.from({ length: count }, (_, i) => first + i * 13);
  return mnistComputeRequest(train, { step: weightsVersion, weightsVersion, indices });
}

/** A worker's compute side with `threads` threads in all, welcomed into a run. */
async function serviceWith(threads: number, microBatchSize?: number) {
  const service =
    threads === 1
      ? new GradientService()
      : new ThreadedGradientService(
          new GradientService(),
          await ComputeThreads.start(threads - 1, { backend: 'wasm' }),
        );
  services.push(service);
  await service.configure(welcome(microBatchSize));
  return service;
}

/** The gradients (copied) and totals of two shards, at weights version 0 and then 1. */
async function twoShards(service: Awaited<ReturnType<typeof serviceWith>>) {
  const answers = [];
  for (const [version, values] of weights.entries()) {
    service.receiveWeights(version, values);
    const { result } = await service.computeGradient(computeRequest(version, version * 100, SAMPLES));
    answers.push({ ...result, gradient: Array.from(result.gradient) });
  }
  return answers;
}

describe('a worker computing on several threads', () => {
  it('with micro-batches, gives the gradient of one thread to the last bit on 2 and 3 threads', async () => {
    // 45 samples in micro-batches of 8: 6 micro-batches, shared by 3 threads as 3 tree nodes of 2.
    const one = await twoShards(await serviceWith(1, 8));
    expect(one[0]?.gradient).not.toEqual(one[1]?.gradient);
    for (const threads of [2, 3]) {
      const answers = await twoShards(await serviceWith(threads, 8));
      expect(answers, `${threads} threads`).toEqual(one);
    }
  }, 60_000);

  it("without micro-batches, adds the threads' contiguous pieces in order: the same bits every time", async () => {
    const two = await twoShards(await serviceWith(2));
    expect(await twoShards(await serviceWith(2))).toEqual(two);
    // The pieces are samples [0, 23) and [23, 45), each computed by one thread as a shard of its own.
    const single = new GradientService();
    services.push(single);
    single.configure(welcome());
    for (const [version, values] of weights.entries()) {
      single.receiveWeights(version, values);
      const request = computeRequest(version, version * 100, SAMPLES);
      const pieces = [
        { start: 0, end: 23 },
        { start: 23, end: SAMPLES },
      ];
      const [first, second] = [new Float32Array(parameterCount), new Float32Array(parameterCount)];
      single.computePieces(request, pieces, [first, second]);
      const sum = first.map((value, i) => value + (second[i] as number));
      expect(two[version]?.gradient).toEqual(Array.from(sum));
      expect(two[version]?.count).toBe(SAMPLES);
    }
  }, 60_000);

  it('reports a thread that crashes mid-shard as a failure naming it, then refuses every later shard', async () => {
    const crashing = new URL('./fixtures/crashing-thread.mjs', import.meta.url);
    const service = new ThreadedGradientService(
      new GradientService(),
      await ComputeThreads.start(1, { backend: 'wasm' }, crashing),
    );
    services.push(service);
    await service.configure(welcome());
    expect(service.failure).toBeUndefined();
    service.receiveWeights(0, weights[0] as Float32Array);
    const crashed = /compute thread 2 of 2 crashed: wasm memory access out of bounds/;
    await expect(service.computeGradient(computeRequest(0, 0, SAMPLES))).rejects.toThrow(
      expect.objectContaining({ code: 'COMPUTE_FAILED', message: expect.stringMatching(crashed) }),
    );
    expect(service.failure).toMatch(crashed);
    await expect(service.computeGradient(computeRequest(0, 0, SAMPLES))).rejects.toThrow(crashed);
  });

  it('refuses to start threads on a backend they cannot load, with the reason', async () => {
    await expect(ComputeThreads.start(1, { backend: 'tensorflow' })).rejects.toThrow(
      /backend "tensorflow" is not available/,
    );
  });
});

describe('a worker started as `node --input-type=module -e …`', () => {
  // Threads inherit the process's Node options, and --input-type is refused with a file entry.
  it('starts its compute threads (then gives up on an absent coordinator)', async () => {
    const script =
      "import('@callosum/worker').then(({ runWorker }) => runWorker({ url: 'ws://127.0.0.1:1', " +
      "backend: 'wasm', threads: 2, giveUpAfterMs: 1, log: (line) => console.error(line) }))" +
      '.then((exit) => console.error(exit.reason))';
    const { stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    });
    expect(stderr).toMatch(/2 compute threads/);
    expect(stderr).toMatch(/no coordinator at ws:\/\/127\.0\.0\.1:1/);
  });
});
