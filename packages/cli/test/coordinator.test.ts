import { type Coordinator, type RunSummary, type StepReport, startCoordinator } from '@callosum/coordinator';
import {
  createMsgpackCodec,
  loadMnist,
  loadModel,
  type MnistDataset,
  PROTOCOL_VERSION,
  readFlatWeights,
  trainLocal,
} from '@callosum/core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
// The built module, so that local workers start the built CLI entry point next to it.
import { type LocalWorker, spawnLocalWorker } from '../dist/local-workers.js';
import { runGate, temporaryDirectory } from './processes.js';

// A coordinator in this process, real `callosum worker` processes on loopback, real signals.

let dataset: MnistDataset;
const workers: LocalWorker[] = [];

beforeAll(async () => {
  // A small test set (small-test-set.ts): these tests are about faults, not accuracy.
  dataset = await loadMnist({ dir: inject('smallTestSetDir') });
});
afterAll(async () => {
  for (const worker of workers) worker.process.kill('SIGKILL');
});

async function coordinator(
  maxSteps: number,
  minWorkers: number,
  extra: {
    batchSize?: number;
    microBatchSize?: number;
    /** Awaited after each step: a test holds the run there until what it waits for has happened. */
    onStep?: (report: StepReport) => Promise<void>;
  } = {},
) {
  const outDir = await temporaryDirectory('coordinator');
  const log: string[] = [];
  const steps: StepReport[] = [];
  const started = await startCoordinator({
    onStep: async (report) => {
      steps.push(report);
      await extra.onStep?.(report);
    },
    outDir,
    dataset,
    minWorkers,
    shardDeadlineMs: 20_000,
    training: { maxSteps, batchSize: extra.batchSize ?? 64, seed: 3, microBatchSize: extra.microBatchSize },
    log: (line) => log.push(line),
  });
  return { coordinator: started, log, steps };
}

interface Status {
  step: number;
  discardedMessages: number;
  workers: { name: string; pendingShards: number[] }[];
}

/** The coordinator's HTTP status (undefined once it has closed). */
async function coordinatorStatus(target: Coordinator): Promise<Status | undefined> {
  try {
    const response = await fetch(`${target.url.replace('ws', 'http')}/status`);
    return (await response.json()) as Status;
  } catch {
    return undefined;
  }
}

/** The coordinator's step counter (undefined once it has closed). */
async function currentStep(target: Coordinator): Promise<number | undefined> {
  return (await coordinatorStatus(target))?.step;
}

function startWorkers(target: Coordinator, count: number): LocalWorker[] {
  const started = Array.from({ length: count }, (_, i) =>
    spawnLocalWorker(`test-worker-${i + 1}`, target.url, { backend: 'wasm', threads: 1 }),
  );
  workers.push(...started);
  return started;
}

async function openRawSocket(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return socket;
}

function closeCode(socket: WebSocket): Promise<number> {
  return new Promise((resolve) => socket.once('close', (code) => resolve(code)));
}

/** Says hello with `protocol` on a raw socket; resolves with the close code and what came back. */
async function helloWithProtocol(url: string, protocol: { major: number; minor: number }) {
  const codec = createMsgpackCodec();
  const socket = await openRawSocket(url);
  const replies: unknown[] = [];
  socket.on('message', (data: Buffer) => replies.push(codec.decode(data)));
  const closed = closeCode(socket);
  socket.send(
    codec.encode({
      type: 'hello',
      protocol,
      workerName: 'other-version',
      backend: 'wasm',
      pid: 1,
      hostname: 'elsewhere',
    }),
  );
  return { code: await closed, replies };
}

describe('coordinator with real worker processes', () => {
  it('finishes every step with the survivors when a worker is SIGKILLed mid-training', async () => {
    const { coordinator: target, log, steps } = await coordinator(30, 3);
    const [victim, ...others] = startWorkers(target, 3);
    let killed = false;
    const summary = await new Promise<RunSummary>((resolve, reject) => {
      const poll = setInterval(async () => {
        if (!killed && ((await currentStep(target)) ?? 0) >= 10) {
          killed = true;
          victim?.process.kill('SIGKILL');
        }
      }, 50);
      target.result.then(resolve, reject).finally(() => clearInterval(poll));
    });
    expect(killed).toBe(true);
    expect(summary.steps).toBe(30);
    expect(summary.workers).toBe(3);
    // Every step covered its full global batch, before and after the loss.
    expect(steps.map((step) => step.perWorker.reduce((sum, worker) => sum + worker.samples, 0))).toEqual(
      Array(30).fill(64),
    );
    expect(steps.at(-1)?.workers).toBe(2);
    // The same run undisturbed: the loss changed who computed what, not what was computed.
    const { coordinator: calm } = await coordinator(30, 3);
    startWorkers(calm, 3);
    const undisturbed = await calm.result;
    expect(Math.abs(summary.testAccuracy - undisturbed.testAccuracy)).toBeLessThanOrEqual(0.005);
    expect(log.some((line) => line.includes('test-worker-1') && line.includes('left'))).toBe(true);
    expect(await victim?.exited).toBe('SIGKILL');
    // The survivors are told the run ended and exit cleanly.
    expect(await Promise.all(others.map((worker) => worker.exited))).toEqual([0, 0]);
  }, 120_000);

  // 96 samples in micro-batches of 16 on 3 workers: 5 tree nodes, so at least one worker holds two in
  // every step. The victim is stopped first and killed only once it holds pending shards, so that
  // they are certainly redone by the survivors.
  it('with micro-batches, ends with the weights of trainLocal to the last bit although a worker was SIGKILLed', async () => {
    const { coordinator: target, log } = await coordinator(30, 3, { batchSize: 96, microBatchSize: 16 });
    const [victim] = startWorkers(target, 3);
    let phase: 'training' | 'stopped' | 'killed' = 'training';
    let pendingWhenKilled: number[] = [];
    // Pending shards seen once may already be answered: a reply sent just before SIGSTOP is still on its
    // way. Only the same shards still pending in the same step a while later are certainly unanswered.
    let firstSeen: { step: number; shards: string; at: number } | undefined;
    const poll = setInterval(async () => {
      const status = await coordinatorStatus(target);
      if (status === undefined) return;
      if (phase === 'training' && status.step >= 10) {
        phase = 'stopped';
        victim?.process.kill('SIGSTOP');
        // What was pending before the stop does not count.
        firstSeen = undefined;
        return;
      }
      const pending = status.workers.find((worker) => worker.name === 'test-worker-1')?.pendingShards ?? [];
      const seen = { step: status.step, shards: pending.join(','), at: Date.now() };
      if (firstSeen === undefined || firstSeen.step !== seen.step || firstSeen.shards !== seen.shards) {
        firstSeen = seen;
        return;
      }
      if (phase === 'stopped' && pending.length > 0 && seen.at - firstSeen.at >= 300) {
        phase = 'killed';
        pendingWhenKilled = pending;
        victim?.process.kill('SIGKILL');
      }
    }, 20);
    const summary = await target.result.finally(() => clearInterval(poll));
    expect(phase).toBe('killed');
    expect(pendingWhenKilled.length).toBeGreaterThan(0);
    expect(summary.redoneShards).toBeGreaterThanOrEqual(pendingWhenKilled.length);
    expect(await victim?.exited).toBe('SIGKILL');
    expect(log.some((line) => line.includes('test-worker-1') && line.includes('left'))).toBe(true);
    const model = await loadModel(summary.modelDir);
    const distributed = readFlatWeights(model);
    model.dispose();
    const local = await trainLocal({
      maxSteps: 30,
      batchSize: 96,
      seed: 3,
      microBatchSize: 16,
      backend: 'wasm',
      evaluate: false,
      dataset,
    });
    local.model.dispose();
    expect(Buffer.from(distributed.buffer).equals(Buffer.from(local.weights.buffer))).toBe(true);
  }, 120_000);

  // 1.4 changed the shard requests (typed features, dropout keys) and replies (metric sums), so every
  // run refuses an older worker; a 1.2 worker would also refuse the welcome's micro-batch size (1.3).
  it('refuses a worker older than protocol 1.4, and warns when backends differ in a run with micro-batches', async () => {
    const { coordinator: target, log } = await coordinator(5, 1, { microBatchSize: 16 });
    const { code, replies } = await helloWithProtocol(target.url, {
      major: PROTOCOL_VERSION.major,
      minor: 2,
    });
    expect(code).toBe(1002);
    expect(replies).toEqual([
      expect.objectContaining({
        type: 'shutdown',
        code: 'VERSION_MISMATCH',
        reason: expect.stringMatching(/1\.4 or later.*worker speaks 1\.2/),
      }),
    ]);
    expect(log.some((line) => /rejected: protocol 1\.4 or later needed/.test(line))).toBe(true);

    // A current peer on another backend is welcomed with the micro-batch size (then leaves); the real
    // wasm worker after it is warned about.
    const codec = createMsgpackCodec();
    const other = await openRawSocket(target.url);
    const welcomed = new Promise((resolve) =>
      other.once('message', (data: Buffer) => resolve(codec.decode(data))),
    );
    other.send(
      codec.encode({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        workerName: 'cpu-peer',
        backend: 'cpu',
        pid: 1,
        hostname: 'elsewhere',
      }),
    );
    expect(await welcomed).toMatchObject({ type: 'welcome', microBatchSize: 16 });
    other.close();
    startWorkers(target, 1);
    expect((await target.result).steps).toBe(5);
    expect(log.filter((line) => line.includes('warning'))).toEqual([
      expect.stringMatching(/test-worker-1.*computes on wasm, others on cpu/),
    ]);
  }, 60_000);

  it('names a SIGSTOPped worker within seconds, redoes its shard, and discards what it sends after SIGCONT', async () => {
    // The run waits before its last ten steps until the woken worker was heard from again and what it
    // sent was discarded, however fast the steps are.
    const discarded = runGate();
    const {
      coordinator: target,
      log,
      steps,
    } = await coordinator(100, 3, {
      onStep: async ({ step }) => {
        if (step === 90) await discarded.wait();
      },
    });
    const [, frozen] = startWorkers(target, 3);
    let stoppedAt = 0;
    let namedAfterMs: number | undefined;
    const poll = setInterval(async () => {
      if (stoppedAt === 0 && ((await currentStep(target)) ?? 0) >= 10) {
        stoppedAt = Date.now();
        frozen?.process.kill('SIGSTOP');
      }
      if (
        stoppedAt > 0 &&
        namedAfterMs === undefined &&
        log.some((line) => /test-worker-2.*is late/.test(line))
      ) {
        namedAfterMs = Date.now() - stoppedAt;
        // Woken a second after it was named, it sends the result of a shard that was redone meanwhile.
        setTimeout(() => frozen?.process.kill('SIGCONT'), 1_000);
      }
      if (
        log.some((line) => /test-worker-2.*responsive again/.test(line)) &&
        ((await coordinatorStatus(target))?.discardedMessages ?? 0) >= 1
      ) {
        discarded.open();
      }
    }, 20);
    const summary = await target.result.finally(() => {
      clearInterval(poll);
      discarded.open();
    });
    // The straggler rule's floor is 2 s; the shard deadline (20 s) would be far later.
    expect(namedAfterMs).toBeLessThan(10_000);
    expect(log.find((line) => line.includes('is late'))).toMatch(
      /test-worker-2, 127\.0\.0\.1:\d+\).*while (receiving|computing)/,
    );
    expect(log.some((line) => /test-worker-2.*responsive again/.test(line))).toBe(true);
    expect(summary.steps).toBe(100);
    expect(summary.lateShards).toBeGreaterThanOrEqual(1);
    expect(summary.discardedMessages).toBeGreaterThanOrEqual(1);
    expect(
      steps.every((step) => step.perWorker.reduce((sum, worker) => sum + worker.samples, 0) === 64),
    ).toBe(true);
  }, 120_000);

  it('drops a peer that sends garbage or the wrong protocol version, and keeps training the honest worker', async () => {
    const { coordinator: target, log } = await coordinator(15, 1);
    const [honest] = startWorkers(target, 1);

    const garbage = await openRawSocket(target.url);
    const garbageClosed = closeCode(garbage);
    garbage.send(Buffer.from([0xc1, 0xff, 0x00, 0x12]));
    expect(await garbageClosed).toBe(1008);

    const { code, replies } = await helloWithProtocol(target.url, {
      major: PROTOCOL_VERSION.major + 1,
      minor: 0,
    });
    expect(code).toBe(1002);
    expect(replies).toContainEqual(expect.objectContaining({ type: 'shutdown', code: 'VERSION_MISMATCH' }));

    const summary = await target.result;
    expect(summary.steps).toBe(15);
    expect(await honest?.exited).toBe(0);
    expect(log.some((line) => line.includes('MALFORMED_MESSAGE'))).toBe(true);
  }, 120_000);

  it('gives a worker that joins mid-run work in later steps', async () => {
    // Far more steps than the run needs, whatever the machine's speed: it is finished once the late
    // worker has shared five steps (a fixed 80 could end before a slow machine had the worker up).
    const { coordinator: target, steps } = await coordinator(2_000, 1);
    startWorkers(target, 1);
    let late: LocalWorker | undefined;
    let finishing = false;
    const poll = setInterval(async () => {
      if (late === undefined && ((await currentStep(target)) ?? 0) >= 5) [late] = startWorkers(target, 1);
      if (!finishing && steps.filter((step) => step.workers === 2).length >= 5) {
        finishing = true;
        target.finish('test: the late worker has shared five steps');
      }
    }, 50);
    const summary = await target.result.finally(() => clearInterval(poll));
    expect(summary.workers).toBe(2);
    expect(summary.steps).toBe(steps.length);
    expect(summary.steps).toBeLessThan(2_000);
    expect(steps[0]?.workers).toBe(1);
    expect(steps.at(-1)?.workers).toBe(2);
    expect(steps.at(-1)?.perWorker.map((worker) => worker.samples)).toEqual([32, 32]);
    expect(await late?.exited).toBe(0);
  }, 120_000);

  it('stops with NO_WORKERS when no worker joins in time', async () => {
    const outDir = await temporaryDirectory('no-workers');
    const target = await startCoordinator({
      outDir,
      dataset,
      minWorkers: 1,
      startTimeoutMs: 300,
      log: () => {},
    });
    await expect(target.result).rejects.toThrow(/only 0 of 1 workers joined within 300 ms/);
  });
});
