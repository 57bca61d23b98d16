import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AUTH_HEADER,
  createAuthHeader,
  createMsgpackCodec,
  loadMnist,
  loadModel,
  type MnistDataset,
  PROTOCOL_VERSION,
  readFlatWeights,
  toWireTensor,
} from '@callosum/core';
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startCoordinator } from './coordinator.js';
import { inlineWorker } from './test-support/inline-worker.js';
import { peerAddresses, resetUpgrades, startWorkerProcess } from './test-support/worker-processes.js';

// A coordinator and a worker in this process, over real loopback sockets, on a small model (each test
// file sizes its own small run, so their configs look alike).
const training = {
  model: { name: 'mlp', options: { hidden: [16] } },
  batchSize: 32,
  maxSteps: 30,
  seed: 2,
  learningRate: 0.001,
  schedule: { kind: 'constant' as const },
  maxShift: 0,
};
let dataset: MnistDataset;
/** The run directory of the coordinator started last. */
let outDir: string;
/** Every run directory a test made, including those of coordinators that refused to start. */
const outDirs: string[] = [];

beforeAll(async () => {
  dataset = await loadMnist();
});
afterEach(async () => {
  await Promise.all(outDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function start(
  extra: Parameters<typeof startCoordinator>[0] extends infer O ? Partial<O> : never = {},
) {
  outDir = await mkdtemp(join(tmpdir(), 'callosum-coordinator-'));
  outDirs.push(outDir);
  return startCoordinator({ outDir, dataset, training, log: () => {}, ...extra });
}

describe('startCoordinator', () => {
  it('serves the dashboard and /metrics by default, and neither with liveViews: false', async () => {
    for (const liveViews of [true, false]) {
      const coordinator = await start({ liveViews, startTimeoutMs: 60_000 });
      const http = coordinator.url.replace('ws', 'http');
      const statuses = await Promise.all(
        ['/', '/events', '/metrics', '/status'].map(async (path) => {
          const response = await fetch(`${http}${path}`);
          await response.body?.cancel();
          return response.status;
        }),
      );
      expect(statuses).toEqual(liveViews ? [200, 200, 200, 200] : [404, 404, 404, 200]);
      expect(coordinator.dashboardUrl === undefined).toBe(!liveViews);
      await coordinator.stop('test over');
    }
  });

  it('runs every step, evaluates the whole test set, writes the model and one metrics line per step', async () => {
    const coordinator = await start();
    const health = await fetch(`${coordinator.url.replace('ws', 'http')}/healthz`);
    expect(await health.text()).toBe('ok');
    const worker = inlineWorker(coordinator.url, { name: 'inline' });
    const summary = await coordinator.result;
    expect(await worker).toMatchObject({ exitCode: 0, stepsComputed: 30 });
    expect(summary).toMatchObject({ steps: 30, workers: 1, backend: 'cpu', redoneShards: 0 });
    expect(summary.testAccuracy).toBeGreaterThan(0.5);

    const records = (await readFile(summary.metricsFile, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(records.filter((record) => record.type === 'step').map((record) => record.step)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    expect(records.find((record) => record.type === 'evaluation')).toMatchObject({ count: 10_000 });
    expect(records.at(-1)).toMatchObject({ type: 'summary', steps: 30 });
    expect(await readFile(join(summary.modelDir, 'model.json'), 'utf8')).toContain('"layers-model"');
  });

  it('discards results for steps and shards a member was never given; evicts it when it stalls a step', async () => {
    let stepsSeen = 0;
    let rogueJoined: () => void = () => {};
    const joined = new Promise<void>((resolve) => {
      rogueJoined = resolve;
    });
    const coordinator = await start({
      shardDeadlineMs: 5_000,
      // Only the hard deadline here; the straggler deadline is tested with SIGSTOP in packages/cli.
      stragglerFloorMs: 60_000,
      onStep: () => {
        stepsSeen += 1;
        if (stepsSeen === 3) rogueJoined();
      },
    });
    const worker = inlineWorker(coordinator.url, { name: 'honest' });
    await joined;
    const codec = createMsgpackCodec();
    const rogue = new WebSocket(coordinator.url, { perMessageDeflate: false });
    await new Promise((resolve) => rogue.once('open', resolve));
    const hello = {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      workerName: 'rogue',
      backend: 'none',
      pid: 1,
      hostname: 'here',
    };
    rogue.send(codec.encode(hello));
    const gradient = (step: number, shard: number) =>
      codec.encode({
        type: 'gradient',
        step,
        shard,
        gradient: toWireTensor(new Float32Array(12_730).fill(1e6), [12_730]),
        lossSum: 0,
        correct: 0,
        metricSums: [],
        count: 32,
        timings: { decodeMs: 0, computeMs: 0 },
      });
    // A future step, a finished step, and a shard that does not exist: none was asked of this peer.
    for (const [step, shard] of [
      [99, 0],
      [0, 0],
      [3, 7],
    ] as const)
      rogue.send(gradient(step, shard));
    const rogueClosed = new Promise<number>((resolve) => rogue.once('close', (code) => resolve(code)));

    const summary = await coordinator.result;
    expect(await worker).toMatchObject({ exitCode: 0 });
    expect(summary.steps).toBe(30);
    expect(summary.discardedMessages).toBeGreaterThanOrEqual(3);
    // The rogue never answers the shards it is then given: it is evicted (4008) and its shards are
    // redone. (On a loaded machine the honest worker may miss this test's 5 s deadline once too.)
    expect(await rogueClosed).toBe(4008);
    expect(summary.evictions).toBeGreaterThanOrEqual(1);
    expect(summary.redoneShards).toBeGreaterThanOrEqual(1);
  });

  it('closes a worker that sends hello again after joining (1008), and records why it left', async () => {
    const lines: string[] = [];
    const coordinator = await start({ log: (line) => lines.push(line) });
    const worker = inlineWorker(coordinator.url, { name: 'honest' });
    const codec = createMsgpackCodec();
    const rogue = new WebSocket(coordinator.url, { perMessageDeflate: false });
    await new Promise((resolve) => rogue.once('open', resolve));
    const hello = codec.encode({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      workerName: 'twice',
      backend: 'none',
      pid: 1,
      hostname: 'here',
    });
    const welcomed = new Promise((resolve) => rogue.once('message', resolve));
    rogue.send(hello);
    await welcomed;
    const closed = new Promise<number>((resolve) => rogue.once('close', (code) => resolve(code)));
    rogue.send(hello);
    expect(await closed).toBe(1008);
    const summary = await coordinator.result;
    expect(await worker).toMatchObject({ exitCode: 0 });
    expect(summary.steps).toBe(30);
    expect(
      lines.some((line) =>
        /\(twice, .*\) left \(UNEXPECTED_MESSAGE: sent hello again after joining\)/.test(line),
      ),
    ).toBe(true);
  });

  it('refuses a worker beyond maxWorkers with RUN_FULL, and trains with the others', async () => {
    const coordinator = await start({ maxWorkers: 1 });
    const worker = inlineWorker(coordinator.url, { name: 'first' });
    const codec = createMsgpackCodec();
    // Wait until the first worker holds the only place.
    while (
      (
        (await (await fetch(`${coordinator.url.replace('ws', 'http')}/status`)).json()) as {
          workers: unknown[];
        }
      ).workers.length === 0
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const extra = new WebSocket(coordinator.url, { perMessageDeflate: false });
    const replies: unknown[] = [];
    extra.on('message', (data: Buffer) => replies.push(codec.decode(data)));
    const closed = new Promise<number>((resolve) => extra.once('close', (code) => resolve(code)));
    await new Promise((resolve) => extra.once('open', resolve));
    extra.send(
      codec.encode({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        workerName: 'extra',
        backend: 'cpu',
        pid: 2,
        hostname: 'here',
      }),
    );
    expect(await closed).toBe(1013);
    expect(replies).toContainEqual(expect.objectContaining({ type: 'shutdown', code: 'RUN_FULL' }));
    const summary = await coordinator.result;
    await worker;
    expect(summary).toMatchObject({ steps: 30, workers: 1 });
  });

  it('refuses upgrades without a valid proof of the token (401), while a worker with the token trains', async () => {
    const token = 'test-token-0123456789abcdef';
    const coordinator = await start({ token });
    const worker = inlineWorker(coordinator.url, { name: 'honest', token });
    const attempt = (headers: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(coordinator.url, { headers });
        socket.once('unexpected-response', (_request, response) => {
          resolve(response.statusCode ?? 0);
          socket.terminate();
        });
        socket.once('open', () => {
          resolve(101);
          socket.close();
        });
        socket.once('error', () => {});
      });
    const stolen = createAuthHeader(token, 'eve');
    expect(await attempt({})).toBe(401);
    expect(await attempt({ [AUTH_HEADER]: createAuthHeader('not-the-token-0123456789', 'eve') })).toBe(401);
    expect(await attempt({ [AUTH_HEADER]: createAuthHeader(token, 'eve', Date.now() - 5 * 60_000) })).toBe(
      401,
    );
    expect(await attempt({ [AUTH_HEADER]: stolen })).toBe(101);
    expect(await attempt({ [AUTH_HEADER]: stolen })).toBe(401); // replayed
    const summary = await coordinator.result;
    expect(await worker).toMatchObject({ exitCode: 0 });
    expect(summary).toMatchObject({ steps: 30, authFailures: 4 });
  });

  it('a worker with the wrong token, or none, gives up at once instead of retrying, saying what to check', async () => {
    const coordinator = await start({ token: 'test-token-0123456789abcdef' });
    const wrong = await inlineWorker(coordinator.url, { token: 'wrong-token-0123456789abc' });
    expect(wrong).toMatchObject({
      exitCode: 1,
      reason: expect.stringMatching(
        /refused this worker's proof of the token \(HTTP 401\): .*clock is more than 60 s off/,
      ),
    });
    const none = await inlineWorker(coordinator.url, {});
    expect(none).toMatchObject({
      exitCode: 1,
      reason: expect.stringMatching(/requires a token \(HTTP 401\) and this worker has none/),
    });
    await coordinator.stop('test over');
  });

  it('a stop asked for during the last step stops the run before the evaluation, for a resume to do it', async () => {
    let stop: (reason: string) => void = () => {};
    const coordinator = await start({
      onStep: (report) => {
        if (report.step === report.totalSteps) stop('stopped during the last step');
      },
    });
    stop = (reason) => void coordinator.stop(reason);
    // Told COORDINATOR_STOPPING, a worker waits for a resumed coordinator: not for long here.
    const worker = inlineWorker(coordinator.url, { name: 'only', giveUpAfterMs: 500 });
    await expect(coordinator.result).rejects.toMatchObject({
      code: 'COORDINATOR_STOPPING',
      message: 'stopped during the last step',
    });
    await worker;
    const records = (await readFile(join(outDir, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; step?: number });
    // Before, the evaluation ran and the run completed as if no stop had been asked for.
    expect(records.filter((record) => record.type === 'evaluation')).toEqual([]);
    expect(records.find((record) => record.type === 'stopped')).toMatchObject({ step: training.maxSteps });
    expect(records.filter((record) => record.type === 'checkpoint').at(-1)).toMatchObject({
      step: training.maxSteps,
    });
  });

  it('warns when more steps are asked for than the epochs hold, and only then', async () => {
    for (const maxSteps of [1_000_000, 5]) {
      const log: string[] = [];
      const coordinator = await start({ training: { ...training, maxSteps }, log: (line) => log.push(line) });
      await coordinator.stop('test over');
      await coordinator.result.catch(() => {});
      const warnings = log.filter((line) => line.includes('steps asked for'));
      expect(warnings).toEqual(
        maxSteps === 5
          ? []
          : [
              expect.stringMatching(
                /^coordinator: warning: 1000000 steps asked for, but \d+ epochs? hold \d+: training stops there \(more epochs train longer\)$/,
              ),
            ],
      );
    }
  });

  it('refuses to listen beyond loopback without a token unless told to, and then warns', async () => {
    // In the CLI's words and in startCoordinator's options (fit refuses such a host itself, in its own).
    await expect(start({ host: '0.0.0.0' })).rejects.toThrow(
      'refusing to listen on 0.0.0.0 without a token: set CALLOSUM_TOKEN (or --token-file), or pass --insecure ' +
        '(token, or insecure: true, from a program)',
    );
    const log: string[] = [];
    const coordinator = await start({ host: '0.0.0.0', insecure: true, log: (line) => log.push(line) });
    expect(log.join('\n')).toMatch(/WARNING: listening on 0\.0\.0\.0 without a token/);
    const ready = await fetch(`http://127.0.0.1:${coordinator.port}/readyz`);
    expect(ready.status).toBe(200);
    await coordinator.stop('test over');
  });

  it('without a token, warns once when workers send one (it admits them, and anyone else)', async () => {
    const log: string[] = [];
    const coordinator = await start({ minWorkers: 2, log: (line) => log.push(line) });
    const token = 'the-workers-token-0123456789';
    const workers = [inlineWorker(coordinator.url, { token }), inlineWorker(coordinator.url, { token })];
    expect((await coordinator.result).workers).toBe(2);
    await Promise.all(workers);
    expect(log.filter((line) => line.includes('sent a token'))).toEqual([
      "coordinator: warning: a worker sent a token, but this coordinator has none (CALLOSUM_TOKEN, --token-file): it admits any worker that can reach 127.0.0.1; start it with the workers' token to admit only them",
    ]);
  });

  it('closes a connection that sends no hello within the handshake timeout', async () => {
    const coordinator = await start({ handshakeTimeoutMs: 300 });
    const silent = new WebSocket(coordinator.url, { perMessageDeflate: false });
    const opened = Date.now();
    const closed = new Promise<[number, string]>((resolve) =>
      silent.once('close', (code, reason) => resolve([code, reason.toString()])),
    );
    expect(await closed).toEqual([1008, 'HANDSHAKE_TIMEOUT']);
    expect(Date.now() - opened).toBeLessThan(3_000);
    await coordinator.stop('test over');
  });

  it('never applies a NaN gradient: rejects it, redoes the shard, evicts the sender after 3, and ends with the clean weights', async () => {
    const sgd = { ...training, optimizer: { name: 'sgd' }, learningRate: 0.05 };
    const clean = await start({ training: sgd });
    void inlineWorker(clean.url, { name: 'alone' });
    const expected = await weightsOf((await clean.result).modelDir);

    const attacked = await start({ training: sgd, minWorkers: 2 });
    const honest = inlineWorker(attacked.url, { name: 'honest' });
    const codec = createMsgpackCodec();
    const rogue = new WebSocket(attacked.url, { perMessageDeflate: false });
    await new Promise((resolve) => rogue.once('open', resolve));
    rogue.send(
      codec.encode({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        workerName: 'nan',
        backend: 'cpu',
        pid: 1,
        hostname: 'h',
      }),
    );
    rogue.on('message', (data: Buffer) => {
      const message = codec.decode(data) as {
        type: string;
        step: number;
        shard: number;
        labels: { shape: number[] };
      };
      if (message.type !== 'compute') return;
      const gradient = new Float32Array(12_730).fill(Number.NaN);
      rogue.send(
        codec.encode({
          type: 'gradient',
          step: message.step,
          shard: message.shard,
          gradient: toWireTensor(gradient, [gradient.length]),
          lossSum: 1,
          correct: 0,
          metricSums: [],
          count: message.labels.shape[0],
          timings: { decodeMs: 0, computeMs: 0 },
        }),
      );
    });
    const rogueClosed = new Promise<[number, string]>((resolve) =>
      rogue.once('close', (code, reason) => resolve([code, reason.toString()])),
    );
    const summary = await attacked.result;
    await honest;
    expect(await rogueClosed).toEqual([1008, 'NON_FINITE']);
    expect(summary).toMatchObject({ steps: 30, evictions: 1 });
    expect(summary.redoneShards).toBeGreaterThanOrEqual(3);
    const actual = await weightsOf(summary.modelDir);
    // Redone shards are summed in a different grouping: equal up to float32 rounding, nothing more.
    let worst = 0;
    actual.forEach((value, i) => {
      worst = Math.max(worst, Math.abs(value - (expected[i] as number)));
    });
    expect(worst).toBeLessThan(1e-6);
    expect(actual.every(Number.isFinite)).toBe(true);
  });

  it('survives a connection flood: refuses it (429 beyond the burst, 401 within) and trains to the very same weights', async () => {
    const token = 'flood-test-token-0123456789';
    const clean = await start({ token });
    void inlineWorker(clean.url, { token });
    const expected = await weightsOf((await clean.result).modelDir);

    // A slow refill, so that however long the 200 upgrades take here, at most a few more than the
    // burst get through (the honest worker's retries get in after the flood).
    const flooded = await start({ token, connectionRate: { perSecond: 0.5, burst: 10 } });
    const honest = inlineWorker(flooded.url, { token });
    const statuses = await Promise.all(
      Array.from(
        { length: 200 },
        () =>
          new Promise<number>((resolve) => {
            const socket = new WebSocket(flooded.url);
            socket.once('unexpected-response', (_request, response) => {
              resolve(response.statusCode ?? 0);
              socket.terminate();
            });
            socket.once('open', () => resolve(101));
            socket.once('error', () => resolve(0));
          }),
      ),
    );
    const summary = await flooded.result;
    await honest;
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(180);
    expect(statuses.filter((status) => status === 101)).toHaveLength(0);
    expect(summary.refusedConnections).toBeGreaterThanOrEqual(180);
    expect(await weightsOf(summary.modelDir)).toEqual(expected);
  });

  it('survives clients that reset the connection while refused, on its port and on ring peer ports, and trains on', async () => {
    // A coordinator or worker that let such a socket's error go unhandled died of ECONNRESET.
    const token = 'reset-test-token-0123456789abcdef';
    // Training waits for a third worker, so the first two are there to be probed.
    const coordinator = await start({ token, topology: 'ring', minWorkers: 3, startTimeoutMs: 60_000 });
    const exits = ['one', 'two'].map((name) => startWorkerProcess(coordinator.url, name, { token }));
    const peers = await peerAddresses(coordinator, 2, token);
    for (const address of [new URL(coordinator.url).host, ...peers]) await resetUpgrades(address, 200);
    exits.push(startWorkerProcess(coordinator.url, 'three', { token }));
    expect((await coordinator.result).steps).toBe(training.maxSteps);
    expect(await Promise.all(exits)).toEqual([0, 0, 0]);
  }, 120_000);

  it('drops every malformed, oversized or fuzzed frame at the door and trains to the very same weights', async () => {
    const clean = await start();
    void inlineWorker(clean.url);
    const expected = await weightsOf((await clean.result).modelDir);

    const target = await start();
    const honest = inlineWorker(target.url);
    const codec = createMsgpackCodec();
    const heartbeat = codec.encode({ type: 'heartbeat', phase: 'idle' });
    // A well-formed tensor frame (protocol 1.1): a gradient with the 12,730 parameters of this model.
    const writer = codec.startTensorFrame(12_730 * 4);
    const tensorFrame = writer.finish(
      {
        type: 'gradient',
        step: 0,
        shard: 0,
        gradient: { dtype: 'float32', shape: [12_730] },
        lossSum: 1,
        correct: 0,
        metricSums: [],
        count: 1,
        timings: { decodeMs: 0, computeMs: 0 },
      },
      'gradient',
    );
    const lyingTrailer = Uint8Array.from(tensorFrame);
    new DataView(lyingTrailer.buffer).setUint32(4, tensorFrame.byteLength, true);
    let deep: unknown = 0;
    for (let i = 0; i < 100; i++) deep = [deep];
    const handmade = [
      heartbeat.subarray(0, heartbeat.length - 2), // truncated
      Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), // an array that claims 4 billion elements
      Buffer.from([0xc6, 0x7f, 0xff, 0xff, 0xff, 0x01]), // a bin that claims 2 GiB
      Buffer.concat([heartbeat, Buffer.from([0x00])]), // trailing bytes
      codec.encode(deep), // deep nesting
      Buffer.from([0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]), // a timestamp extension (Date)
      codec.encode(JSON.parse('{"type":"heartbeat","phase":"idle","__proto__":{"admin":true}}')),
      tensorFrame, // valid, but not a hello
      lyingTrailer, // a tensor frame whose trailer claims more bytes than the frame has
      new Uint8Array(12_730 * 4 + 64 * 1024 + 1), // one byte over the frame limit
    ];
    const fuzzed = fc.sample(
      fc
        .tuple(
          fc.constantFrom(
            heartbeat,
            codec.encode({ type: 'failure', code: 'INTERNAL', message: 'x' }),
            tensorFrame,
          ),
          fc.nat(),
          fc.integer({ min: 0, max: 255 }),
        )
        .map(([frame, position, value]) => {
          const copy = Uint8Array.from(frame);
          // In a tensor frame, edit the prelude or the trailer (the payload is any bytes anyway).
          const editable =
            frame === tensorFrame ? [...range(0, 8), ...range(frame.length - 200, frame.length)] : [];
          copy[
            editable.length > 0 ? (editable[position % editable.length] as number) : position % copy.length
          ] = value;
          return copy;
        }),
      // With the 10 handmade frames, 50 connections: within the per-address burst of 64 (no 429s).
      40,
    );
    const codes = await Promise.all(
      [...handmade, ...fuzzed].map(
        (frame) =>
          new Promise<number>((resolve) => {
            const socket = new WebSocket(target.url, { perMessageDeflate: false });
            socket.once('open', () => socket.send(frame));
            socket.once('close', (code) => resolve(code));
            socket.once('error', () => {});
          }),
      ),
    );
    const summary = await target.result;
    await honest;
    expect(codes.slice(0, handmade.length - 1).every((code) => code === 1008)).toBe(true);
    expect(codes[handmade.length - 1]).toBe(1009);
    expect(codes.slice(handmade.length).every((code) => code === 1008)).toBe(true);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    expect(await weightsOf(summary.modelDir)).toEqual(expected);
  });

  it('a stopped coordinator sends workers COORDINATOR_STOPPING; they wait and rejoin the resumed run', async () => {
    let steps = 0;
    let stopping: Promise<void> | undefined;
    const first = await start({
      checkpointEverySteps: 1000,
      onStep: () => {
        steps += 1;
        if (steps === 10) stopping = first.stop('preempted');
      },
    });
    const worker = inlineWorker(first.url, { name: 'patient', reconnectDelayMs: 50 });
    await expect(first.result).rejects.toThrow(/preempted/);
    await stopping;
    const resumed = await startCoordinator({
      outDir,
      dataset,
      port: first.port,
      resume: true,
      log: () => {},
    });
    const summary = await resumed.result;
    expect(summary.steps).toBe(30);
    expect(await worker).toMatchObject({ exitCode: 0, stepsComputed: 30 });
  });
});

async function weightsOf(modelDir: string): Promise<Float32Array> {
  const model = await loadModel(modelDir);
  const weights = readFlatWeights(model);
  model.dispose();
  return weights;
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}
