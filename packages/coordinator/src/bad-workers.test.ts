import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ComputeRequest,
  createMsgpackCodec,
  type EvaluateRequest,
  INSTANCE_HEADER,
  loadMnist,
  loadModel,
  type MnistDataset,
  readFlatWeights,
  type Shutdown,
  toWireTensor,
  type WorkerMessage,
} from '@callosum/core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startCoordinator } from './coordinator.js';
import { inlineWorker } from './test-support/inline-worker.js';
import { protocolHello } from './test-support/protocol-worker.js';

// A real coordinator and an honest worker in this process, over real loopback sockets, with a rogue
// client that misbehaves as a broken worker would: it fails every shard, answers with the wrong sample
// count, or heartbeats while never answering. The run must end with the honest worker's weights, to the
// bit (micro-batches: who computes a shard does not change a bit), and the rogue must be evicted for
// what it did.
const training = {
  model: { name: 'mlp', options: { hidden: [16] } },
  batchSize: 32,
  microBatchSize: 8,
  maxSteps: 40,
  seed: 4,
  learningRate: 0.01,
  optimizer: { name: 'sgd' },
  schedule: { kind: 'constant' as const },
  maxShift: 0,
};
const PARAMETERS = 12_730;
let dataset: MnistDataset;
const outDirs: string[] = [];
const sockets: WebSocket[] = [];

beforeAll(async () => {
  dataset = await loadMnist();
});
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.terminate();
  await Promise.all(outDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function start(extra: Partial<Parameters<typeof startCoordinator>[0]> = {}) {
  const outDir = await mkdtemp(join(tmpdir(), 'callosum-bad-workers-'));
  outDirs.push(outDir);
  const log: string[] = [];
  const coordinator = await startCoordinator({
    outDir,
    dataset,
    training,
    log: (line) => log.push(line),
    ...extra,
  });
  return { coordinator, log };
}

/** The weights of a run with the honest worker alone. */
let alone: Float32Array | undefined;
async function weightsAlone(): Promise<Float32Array> {
  if (alone === undefined) {
    const { coordinator } = await start();
    void inlineWorker(coordinator.url, { name: 'alone' });
    alone = await weightsOf((await coordinator.result).modelDir);
  }
  return alone;
}

async function weightsOf(modelDir: string): Promise<Float32Array> {
  const model = await loadModel(modelDir);
  const weights = readFlatWeights(model);
  model.dispose();
  return weights;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

type Request = ComputeRequest | EvaluateRequest;

/**
 * A client that joins as `name` (the process `instance`, if given, as a 1.10 worker says in its upgrade
 * request) and answers each request as `answer` says (nothing, for undefined); resolves with how its
 * connection was closed and the type of the first message it was sent (`welcome`, or a `shutdown`).
 */
async function rogue(
  url: string,
  name: string,
  answer: (request: Request) => WorkerMessage | undefined,
  { heartbeatEveryMs, instance }: { heartbeatEveryMs?: number; instance?: string } = {},
): Promise<{
  closed: Promise<[number, string]>;
  firstMessage: Promise<string>;
  requests: Request[];
  shutdowns: Shutdown[];
}> {
  const codec = createMsgpackCodec();
  const socket = new WebSocket(url, {
    perMessageDeflate: false,
    ...(instance === undefined ? {} : { headers: { [INSTANCE_HEADER]: instance } }),
  });
  sockets.push(socket);
  const requests: Request[] = [];
  const shutdowns: Shutdown[] = [];
  let computing: number | undefined;
  let seeFirst: (type: string) => void = () => {};
  const firstMessage = new Promise<string>((resolve) => {
    seeFirst = resolve;
  });
  socket.on('message', (data: Buffer) => {
    const message = codec.decode(data) as { type: string };
    seeFirst(message.type);
    if (message.type === 'shutdown') shutdowns.push(message as Shutdown);
    if (message.type !== 'compute' && message.type !== 'evaluate') return;
    const request = message as Request;
    requests.push(request);
    if (request.type === 'compute') computing = request.step;
    const reply = answer(request);
    if (reply !== undefined) socket.send(codec.encode(reply));
  });
  const closed = new Promise<[number, string]>((resolve) =>
    socket.once('close', (code, reason) => resolve([code, reason.toString()])),
  );
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(codec.encode({ ...protocolHello(8), workerName: name }));
  if (heartbeatEveryMs !== undefined) {
    const heartbeat = setInterval(() => {
      if (socket.readyState !== socket.OPEN) return;
      socket.send(
        codec.encode(
          computing === undefined
            ? { type: 'heartbeat', phase: 'idle' }
            : { type: 'heartbeat', phase: 'computing', step: computing },
        ),
      );
    }, heartbeatEveryMs);
    void closed.then(() => clearInterval(heartbeat));
  }
  return { closed, firstMessage, requests, shutdowns };
}

/** A `failure` for the request, as a worker whose device fails reports it. */
function failureOf(request: Request, message: string): WorkerMessage {
  return {
    type: 'failure',
    code: 'COMPUTE_FAILED',
    message,
    ...(request.type === 'compute' ? { step: request.step } : { round: request.round }),
    shard: request.shard,
  };
}

const samplesOf = (request: Request) => request.labels.shape[0] as number;

describe('a bad worker next to an honest one', () => {
  it('one that fails every shard: its shards are redone on the honest worker, it is evicted after 3, and the weights are those of the honest worker alone', async () => {
    const expected = await weightsAlone();
    const { coordinator, log } = await start({ minWorkers: 2 });
    const honest = inlineWorker(coordinator.url, { name: 'honest' });
    const broken = await rogue(coordinator.url, 'broken', (request) =>
      failureOf(request, 'simulated device failure on this worker'),
    );
    const summary = await coordinator.result;
    expect(await honest).toMatchObject({ exitCode: 0 });
    expect(summary).toMatchObject({ steps: training.maxSteps, evictions: 1 });
    expect(await broken.closed).toEqual([1008, 'COMPUTE_FAILED']);
    // Evicted at its third failure: it was asked for three shards (one per step), no more.
    expect(broken.requests.filter((request) => request.type === 'compute')).toHaveLength(3);
    expect(log).toContainEqual(
      expect.stringMatching(
        /evicting worker w\d+ \(broken, [^)]*\): 3 shards in a row failed or answered unusably, each computed by another worker \(last: step 3, shard \d: COMPUTE_FAILED: simulated device failure on this worker\)/,
      ),
    );
    expect(sameBits(await weightsOf(summary.modelDir), expected)).toBe(true);
  });

  it('one that fails every shard and connects again: its process is refused until its cooldown is over, then taken back, and evicted again for twice as long', async () => {
    const { coordinator, log } = await start({
      minWorkers: 2,
      evictionCooldownMs: 4_000,
      // Long enough for the whole exchange; ended early below.
      training: { ...training, maxSteps: 1_000_000 },
    });
    const honest = inlineWorker(coordinator.url, { name: 'honest' });
    const failing = (request: Request) => failureOf(request, 'simulated device failure on this worker');
    const brokenProcess = 'a'.repeat(32);
    const first = await rogue(coordinator.url, 'broken', failing, { instance: brokenProcess });
    expect(await first.closed).toEqual([1008, 'COMPUTE_FAILED']);
    const evictedAt = performance.now();

    const refused = await rogue(coordinator.url, 'broken', failing, { instance: brokenProcess });
    expect(await refused.closed).toEqual([1013, 'EVICTION_COOLDOWN']);
    expect(refused.shutdowns).toEqual([
      {
        type: 'shutdown',
        code: 'EVICTION_COOLDOWN',
        reason: expect.stringMatching(
          /^evicted once for its results \(last: 3 shards in a row failed or answered unusably.*simulated device failure on this worker\)\); taken back in [1-4] s$/,
        ),
      },
    ]);
    expect(refused.requests).toEqual([]);
    // Another process of the same name (names need not be unique: host:1 in every container), and a
    // worker that does not say which process it is (older than 1.10), are not held to it.
    for (const instance of ['b'.repeat(32), undefined]) {
      const sameName = await rogue(coordinator.url, 'broken', () => undefined, {
        ...(instance === undefined ? {} : { instance }),
      });
      expect(await sameName.firstMessage).toBe('welcome');
      (sockets.at(-1) as WebSocket).terminate();
    }

    await new Promise((resolve) => setTimeout(resolve, 4_050 - (performance.now() - evictedAt)));
    const again = await rogue(coordinator.url, 'broken', failing, { instance: brokenProcess });
    expect(await again.closed).toEqual([1008, 'COMPUTE_FAILED']);
    expect(again.requests.filter((request) => request.type === 'compute')).toHaveLength(3);
    const refusedLonger = await rogue(coordinator.url, 'broken', failing, { instance: brokenProcess });
    expect(await refusedLonger.closed).toEqual([1013, 'EVICTION_COOLDOWN']);
    expect(refusedLonger.shutdowns[0]?.reason).toMatch(
      /^evicted 2 times for its results .*; taken back in [1-8] s$/,
    );

    coordinator.finish('the test has seen enough');
    const summary = await coordinator.result;
    expect(await honest).toMatchObject({ exitCode: 0 });
    expect(summary).toMatchObject({ evictions: 2 });
    const evictions = log.filter((line) => /evicting worker w\d+ \(broken/.test(line));
    expect(evictions).toEqual([
      expect.stringMatching(/; refused for 4 s if it connects again; its shards are redone$/),
      expect.stringMatching(/; refused for 8 s if it connects again; its shards are redone$/),
    ]);
    expect(log.filter((line) => /worker broken \(.*\) refused: evicted/.test(line))).toHaveLength(2);
  });

  it('one that answers with the wrong sample count: the same, naming the count', async () => {
    const expected = await weightsAlone();
    const { coordinator, log } = await start({ minWorkers: 2 });
    const honest = inlineWorker(coordinator.url, { name: 'honest' });
    const miscounting = await rogue(coordinator.url, 'miscounting', (request) =>
      request.type === 'compute'
        ? {
            type: 'gradient',
            step: request.step,
            shard: request.shard,
            gradient: toWireTensor(new Float32Array(PARAMETERS), [PARAMETERS]),
            lossSum: 0,
            correct: 0,
            metricSums: [],
            count: samplesOf(request) + 1,
            timings: { decodeMs: 0, computeMs: 0 },
          }
        : failureOf(request, 'no evaluations here'),
    );
    const summary = await coordinator.result;
    expect(await honest).toMatchObject({ exitCode: 0 });
    expect(summary).toMatchObject({ steps: training.maxSteps, evictions: 1 });
    expect(await miscounting.closed).toEqual([1008, 'MALFORMED_MESSAGE']);
    expect(log).toContainEqual(
      expect.stringMatching(
        /evicting worker w\d+ \(miscounting, [^)]*\): 3 shards in a row failed or answered unusably.*result counts 17 samples, the shard has 16\)/,
      ),
    );
    expect(sameBits(await weightsOf(summary.modelDir), expected)).toBe(true);
  });

  it('one that heartbeats but never answers: late 3 times in a row, it is evicted, and the weights are those of the honest worker alone', async () => {
    const expected = await weightsAlone();
    const { coordinator, log } = await start({
      minWorkers: 2,
      stragglerFloorMs: 300,
      // Not the hard deadline: lateness that accumulates.
      shardDeadlineMs: 120_000,
    });
    const honest = inlineWorker(coordinator.url, { name: 'honest' });
    // Heard from often, it is soon healthy again after each late shard, and given the next step's.
    const hung = await rogue(coordinator.url, 'hung', () => undefined, { heartbeatEveryMs: 20 });
    const summary = await coordinator.result;
    expect(await honest).toMatchObject({ exitCode: 0 });
    expect(await hung.closed).toEqual([4008, 'evicted: late too often']);
    expect(summary).toMatchObject({ steps: training.maxSteps, evictions: 1 });
    const hungLate = log.filter((line) => /worker w\d+ \(hung, .*is late/.test(line));
    expect(hungLate).toHaveLength(3);
    expect(log).toContainEqual(
      expect.stringMatching(
        /evicting worker w\d+ \(hung, [^)]*\): late on 3 shards in a row without a result accepted in between \(last: shard \d, pending \d+ ms while computing\)/,
      ),
    );
    expect(sameBits(await weightsOf(summary.modelDir), expected)).toBe(true);
  });
});

describe('a shard that fails on every worker (a task bug)', () => {
  it('stops the run promptly with COMPUTE_FAILED and the reason, evicting nobody', async () => {
    const { coordinator, log } = await start({ minWorkers: 2 });
    const bug = (request: Request) => failureOf(request, 'task t: loss meanLoss threw: no such tensor');
    const workers = [await rogue(coordinator.url, 'one', bug), await rogue(coordinator.url, 'two', bug)];
    const started = Date.now();
    await expect(coordinator.result).rejects.toMatchObject({
      code: 'COMPUTE_FAILED',
      message: expect.stringMatching(
        /^step 1: shard \d failed 5 times \(last: worker w\d+ \((one|two), [^)]*\): COMPUTE_FAILED: task t: loss meanLoss threw: no such tensor\); stopping$/,
      ),
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(log.filter((line) => line.includes('evicting'))).toEqual([]);
    // Told why, and closed normally.
    for (const worker of workers) expect(await worker.closed).toEqual([1000, 'run ended']);
  });
});

describe("a worker's words in the coordinator's log", () => {
  const forged = 'coordinator: worker w9 (x, 10.0.0.9:1) joined (backend wasm); 2 healthy';

  it('cannot forge a log line: control characters and bidi overrides in a failure are escaped where it is logged', async () => {
    const { coordinator, log } = await start({ minWorkers: 2 });
    const bug = (request: Request) => failureOf(request, `no such tensor\n${forged}\r\u202egnirts`);
    const workers = [await rogue(coordinator.url, 'one', bug), await rogue(coordinator.url, 'two', bug)];
    const failed = await coordinator.result.then(
      () => undefined,
      (error: Error) => error,
    );
    for (const worker of workers) await worker.closed;
    expect(failed?.message).toContain(`no such tensor\\n${forged}\\r\\u202egnirts`);
    const logged = [...log, failed?.message ?? ''];
    expect(logged.filter((line) => /[\n\r\u202e]/.test(line))).toEqual([]);
    expect(logged.some((line) => line.includes(`no such tensor\\n${forged}`))).toBe(true);
  });

  it('a hello whose worker name holds a newline, or an unknown key with one, is refused and logged escaped', async () => {
    const { coordinator, log } = await start({ minWorkers: 1 });
    const codec = createMsgpackCodec();
    for (const hello of [
      { ...protocolHello(8), workerName: `evil\n${forged}` },
      { ...protocolHello(8), [`x\n${forged}`]: 1 },
    ]) {
      const socket = new WebSocket(coordinator.url, { perMessageDeflate: false });
      sockets.push(socket);
      await new Promise((resolve) => socket.once('open', resolve));
      const closed = new Promise<[number, string]>((resolve) =>
        socket.once('close', (code, reason) => resolve([code, reason.toString()])),
      );
      socket.send(codec.encode(hello));
      expect(await closed).toEqual([1008, 'MALFORMED_MESSAGE']);
    }
    expect(log.filter((line) => /[\n\r]/.test(line))).toEqual([]);
    expect(log).toContainEqual(
      expect.stringMatching(
        /workerName: must not contain control characters, line separators or bidi overrides \(found \\n\)/,
      ),
    );
    expect(log).toContainEqual(expect.stringContaining(`Unrecognized key: "x\\n${forged}"`));
    await coordinator.stop('test over');
  });
});
