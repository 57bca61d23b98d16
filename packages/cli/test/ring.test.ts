import { connect } from 'node:net';
import { type Coordinator, type RunSummary, startCoordinator } from '@callosum/coordinator';
import {
  AUTH_HEADER,
  createAuthHeader,
  loadMnist,
  loadModel,
  type MnistDataset,
  readFlatWeights,
  trainLocal,
} from '@callosum/core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
// The built module, so that local workers start the built CLI entry point next to it.
import { type LocalWorker, spawnLocalWorker } from '../dist/local-workers.js';
import { runGate, temporaryDirectory } from './processes.js';

// The ring topology with a coordinator in this process and real `callosum worker` processes on
// loopback, which reduce among themselves over their own peer ports: real sockets, real signals.

const TOKEN = 'ring-test-token-0123456789abcdef';
const STEPS = 30;
const BATCH = 96;
const MICRO_BATCH = 16;
const SEED = 3;

let dataset: MnistDataset;
/** What trainLocal ends with for the runs below: with micro-batches, the same bits at any worker count. */
let localWeights: Float32Array;
let localAccuracy: number;
const workers: LocalWorker[] = [];

beforeAll(async () => {
  // A small test set (small-test-set.ts): these tests are about faults, not accuracy.
  dataset = await loadMnist({ dir: inject('smallTestSetDir') });
  const local = await trainLocal({
    maxSteps: STEPS,
    batchSize: BATCH,
    seed: SEED,
    microBatchSize: MICRO_BATCH,
    backend: 'wasm',
    dataset,
  });
  localWeights = local.weights;
  localAccuracy = local.testAccuracy;
  local.model.dispose();
}, 120_000);
afterAll(() => {
  for (const worker of workers) worker.process.kill('SIGKILL');
});

async function ringCoordinator(
  extra: {
    replicaCheckEverySteps?: number;
    wireDtype?: 'float32' | 'float16';
    minWorkers?: number;
    outDir?: string;
    port?: number;
    resume?: boolean;
    onStep?: (report: { step: number }) => Promise<void>;
  } = {},
) {
  const log: string[] = [];
  const coordinator = await startCoordinator({
    outDir: extra.outDir ?? (await temporaryDirectory('ring')),
    dataset,
    minWorkers: 3,
    token: TOKEN,
    topology: 'ring',
    shardDeadlineMs: 20_000,
    ...extra,
    training: { maxSteps: STEPS, batchSize: BATCH, seed: SEED, microBatchSize: MICRO_BATCH },
    log: (line) => log.push(line),
  });
  return { coordinator, log };
}

/** Starts one worker per entry of `env` (its extra environment), named ring-worker-<first>, -<first + 1>, … */
function startWorkers(target: Coordinator, env: Record<string, string>[], first = 1): LocalWorker[] {
  const started = env.map((extra, i) =>
    spawnLocalWorker(
      `ring-worker-${first + i}`,
      target.url,
      { backend: 'wasm', threads: 1 },
      { CALLOSUM_TOKEN: TOKEN, ...extra },
    ),
  );
  workers.push(...started);
  return started;
}

interface Status {
  phase: string;
  step: number;
  workers: { id: string; name: string; pendingShards: number[]; peerAddress?: string }[];
  reduction: { step: number; attempt: number; workers: string[] } | null;
}

async function status(target: Coordinator): Promise<Status | undefined> {
  try {
    const response = await fetch(`${target.url.replace('ws', 'http')}/status`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return response.ok ? ((await response.json()) as Status) : undefined;
  } catch {
    return undefined;
  }
}

async function finalWeights(summary: RunSummary): Promise<Float32Array> {
  const model = await loadModel(summary.modelDir);
  const weights = readFlatWeights(model);
  model.dispose();
  return weights;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

describe('the ring topology with real worker processes', () => {
  it('redoes the step when a peer is SIGKILLed in the middle of a reduction, and ends with the weights of trainLocal', async () => {
    const { coordinator: target, log } = await ringCoordinator();
    const [victim, ...survivors] = startWorkers(target, [{}, {}, {}]);
    const frozenAt = await freezeMidReduction(target, victim as LocalWorker);
    victim?.process.kill('SIGKILL');
    const summary = await target.result;
    expect(frozenAt).toBeDefined();
    expect(await victim?.exited).toBe('SIGKILL');
    // Abandoned as soon as the coordinator sees the victim's connection close, or a survivor reports the
    // link to it lost, whichever comes first.
    const abandoned = log.find((line) => line.includes(`reduction of step ${(frozenAt ?? 0) + 1}`));
    expect(abandoned).toMatch(/ring-worker-1.* left|PEER_LOST: .*lost the link to peer/);
    expect(summary.redoneSteps).toBeGreaterThanOrEqual(1);
    // A ring worker that joins is not healthy until it holds the run's state, and the log says so.
    expect(log.find((line) => line.includes('ring-worker-1') && line.includes('joined'))).toMatch(
      /healthy, [1-3] getting the run's state/,
    );
    expect(summary.steps).toBe(STEPS);
    expect(Math.abs(summary.testAccuracy - localAccuracy)).toBeLessThanOrEqual(0.005);
    expect(sameBits(await finalWeights(summary), localWeights)).toBe(true);
    expect(await Promise.all(survivors.map((worker) => worker.exited))).toEqual([0, 0]);
  }, 180_000);

  it('names a peer frozen in the middle of a reduction within seconds, redoes the step without it, and takes it back', async () => {
    const { coordinator: target, log } = await ringCoordinator();
    const [victim] = startWorkers(target, [{}, {}, {}]);
    const frozenAt = await freezeMidReduction(target, victim as LocalWorker);
    expect(frozenAt).toBeDefined();
    const named = Date.now();
    while (
      !log.some((line) => line.includes('ring-worker-1') && line.includes('is late in the ring reduction'))
    ) {
      expect(Date.now() - named).toBeLessThan(10_000);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    victim?.process.kill('SIGCONT');
    const summary = await target.result;
    const late = log.find((line) => line.includes('is late in the ring reduction'));
    expect(late).toContain(`step ${(frozenAt ?? 0) + 1}`);
    expect(late).toMatch(
      /ms while reducing \(last heard \d+ ms ago, (reducing|computing|idle|receiving|sending)\)/,
    );
    // Its peers, waiting for it, heartbeat on: they are not named, and redo the step at once.
    expect(
      log.filter((line) => line.includes('is late in the ring reduction') && !line.includes('ring-worker-1')),
    ).toEqual([]);
    expect(summary.steps).toBe(STEPS);
    expect(sameBits(await finalWeights(summary), localWeights)).toBe(true);
    expect(await victim?.exited).toBe(0);
  }, 180_000);

  // Replicas are compared every 5 steps; worker 2 corrupts its own at step 15 (fault injection), which
  // the comparison at step 15 finds before that step is applied: the step is redone after worker 2 got
  // a good replica, so the run still ends with trainLocal's weights.
  it('names a replica corrupted on purpose, replaces it, and keeps the weights exact', async () => {
    const { coordinator: target, log } = await ringCoordinator({ replicaCheckEverySteps: 5 });
    const [, corrupted] = startWorkers(target, [{}, { CALLOSUM_FAULT_CORRUPT_REPLICA_AT: '15' }, {}]);
    const summary = await target.result;
    const named = log.filter((line) => line.includes('its replica differs'));
    expect(named).toHaveLength(1);
    expect(named[0]).toContain('ring-worker-2');
    expect(named[0]).toContain('step 16');
    expect(corrupted?.recentLog.join('\n')).toContain('FAULT INJECTION: replica corrupted at step 15');
    expect(summary.steps).toBe(STEPS);
    expect(sameBits(await finalWeights(summary), localWeights)).toBe(true);
  }, 180_000);

  it('gives a worker that joins mid-run the state of a replica, and ends with the weights of trainLocal', async () => {
    // The run holds after step 10 (onStep's promise) until the late worker has joined and listens for
    // peers: the next step then gives it a replica's state, however fast the steps are. (It cannot
    // wait for it to be healthy: the state is sent between steps.)
    let target: Coordinator | undefined;
    let late: LocalWorker | undefined;
    const onStep = async ({ step }: { step: number }) => {
      if (step !== 10 || target === undefined) return;
      [late] = startWorkers(target, [{}], 3);
      const waiting = (current: Status | undefined) =>
        current?.workers.some((w) => w.name === 'ring-worker-3' && w.peerAddress !== undefined);
      while (!waiting(await status(target))) await new Promise((resolve) => setTimeout(resolve, 20));
    };
    const run = await ringCoordinator({ minWorkers: 2, onStep });
    target = run.coordinator;
    startWorkers(target, [{}, {}]);
    const summary = await target.result;
    expect(run.log.some((line) => line.includes('ring-worker-3') && line.includes('joined'))).toBe(true);
    expect(summary.workers).toBe(3);
    expect(late?.recentLog.join('\n')).toMatch(/joined run/);
    expect(await late?.exited).toBe(0);
    expect(sameBits(await finalWeights(summary), localWeights)).toBe(true);
  }, 180_000);

  // The first coordinator stops mid-run (its checkpoint pulled from a replica); a second one resumes the
  // run on the same port, the same workers reconnect and get the checkpoint as their replicas.
  it('resumes a ring run from its checkpoint with the workers of the first coordinator', async () => {
    const outDir = await temporaryDirectory('ring-resume');
    const first = await ringCoordinator({ outDir });
    const ringWorkers = startWorkers(first.coordinator, [{}, {}, {}]);
    while (((await status(first.coordinator))?.step ?? 0) < 12) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await first.coordinator.stop('test: stop mid-run');
    await expect(first.coordinator.result).rejects.toThrow(/test: stop mid-run/);
    const second = await ringCoordinator({ outDir, port: first.coordinator.port, resume: true });
    const summary = await second.coordinator.result;
    const resumedAt = second.log
      .map((line) => /resuming from .* after step (\d+)/.exec(line)?.[1])
      .find(Boolean);
    expect(Number(resumedAt)).toBeGreaterThanOrEqual(12);
    expect(summary.steps).toBe(STEPS);
    expect(sameBits(await finalWeights(summary), localWeights)).toBe(true);
    expect(await Promise.all(ringWorkers.map((worker) => worker.exited))).toEqual([0, 0, 0]);
  }, 180_000);

  // Each rank rounds the rows it holds and the mean chunk it reduces before sending them, so every
  // replica applies the same float16 values: the replicas are compared at every step.
  it('halves the peer bytes with --wire-dtype float16 and keeps the replicas identical', async () => {
    const run = async (wireDtype: 'float32' | 'float16') => {
      const { coordinator: target, log } = await ringCoordinator({ wireDtype, replicaCheckEverySteps: 1 });
      startWorkers(target, [{}, {}, {}]);
      const summary = await target.result;
      expect(log.filter((line) => line.includes('its replica differs'))).toEqual([]);
      expect(summary.steps).toBe(STEPS);
      return summary;
    };
    const full = await run('float32');
    const half = await run('float16');
    const ratio = half.bytesPerStep.busiestWorker / full.bytesPerStep.busiestWorker;
    expect(ratio).toBeGreaterThan(0.45);
    expect(ratio).toBeLessThan(0.55);
    // The coordinator carries only the data and control messages, in both.
    expect(Math.abs(half.bytesPerStep.coordinator / full.bytesPerStep.coordinator - 1)).toBeLessThan(0.01);
    expect(full.bytesPerStep.coordinator).toBeLessThan(200_000);
    expect(Math.abs(half.testAccuracy - full.testAccuracy)).toBeLessThanOrEqual(0.02);
  }, 180_000);

  it("refuses rogue connections to a worker's peer port while training goes on unchanged", async () => {
    // The run cannot end before the probes have, however slow they are: they need the peer ports open.
    const probesDone = runGate();
    const { coordinator: target } = await ringCoordinator({
      onStep: async ({ step }) => {
        if (step === STEPS - 2) await probesDone.wait();
      },
    });
    startWorkers(target, [{}, {}, {}]);
    let peer: string | undefined;
    while (peer === undefined) {
      const current = await status(target);
      if (current === undefined) throw new Error('the coordinator stopped before its workers listened');
      peer = current.workers.find((worker) => worker.peerAddress !== undefined)?.peerAddress;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const url = `ws://${peer}`;
    expect(await upgradeStatus(url, undefined)).toBe(401);
    expect(await upgradeStatus(url, createAuthHeader('wrong-token-0123456789abcdef', 'rogue'))).toBe(401);
    expect(await rawGarbage(peer)).toMatch(/^HTTP\/1\.1 400/);
    // With the token (a peer gone wrong, not an outsider): bytes that are no message, and a frame over the
    // limit, each close the connection.
    expect(await authenticatedSend(url, Buffer.from('not messagepack at all'))).toBe(1008);
    expect(await authenticatedSend(url, Buffer.alloc(64 * 1024 * 1024))).toBe(1009);
    // A flood of upgrade attempts: the rate limit answers 429 long before it ends.
    const flood = await Promise.all(Array.from({ length: 80 }, () => upgradeStatus(url, undefined)));
    probesDone.open();
    expect(flood.filter((code) => code === 429).length).toBeGreaterThan(0);
    const summary = await target.result;
    expect(summary.steps).toBe(STEPS);
    expect(sameBits(await finalWeights(summary), localWeights)).toBe(true);
  }, 180_000);
});

/** The HTTP status a WebSocket upgrade to `url` is answered with (101 when it opens). */
function upgradeStatus(url: string, auth: string | undefined): Promise<number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, { headers: auth === undefined ? {} : { [AUTH_HEADER]: auth } });
    socket.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.once('open', () => {
      resolve(101);
      socket.terminate();
    });
    socket.once('error', () => resolve(0));
  });
}

/** What the peer port answers to bytes that are not HTTP. */
function rawGarbage(address: string): Promise<string> {
  const [host, port] = [
    address.slice(0, address.lastIndexOf(':')),
    Number(address.slice(address.lastIndexOf(':') + 1)),
  ];
  return new Promise((resolve) => {
    const socket = connect(port, host, () =>
      socket.write(Buffer.from([0xde, 0xad, 0xbe, 0xef, 13, 10, 13, 10])),
    );
    let answer = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.once('close', () => resolve(answer));
  });
}

/** Sends one binary frame over an authenticated peer connection; resolves with the close code. */
function authenticatedSend(url: string, frame: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, {
      perMessageDeflate: false,
      headers: { [AUTH_HEADER]: createAuthHeader(TOKEN, 'rogue-peer') },
    });
    socket.once('open', () => socket.send(frame));
    socket.once('close', (code) => resolve(code));
    socket.once('error', () => undefined);
  });
}

/**
 * Freezes `victim` (SIGSTOP) in the middle of a ring reduction and returns that step: it is stopped the
 * moment /status shows none of the step's shards pending on it while another worker's are (it computed
 * its shards and started the reduction), and kept stopped if, 300 ms later, the reduction waits for it
 * (otherwise it is let go and tried again). Undefined if the run ended first.
 */
async function freezeMidReduction(target: Coordinator, victim: LocalWorker): Promise<number | undefined> {
  for (let tries = 0; tries < 100; ) {
    const before = await status(target);
    if (before === undefined) return undefined;
    // Polled without a pause, so that the victim is frozen while the reduction cannot end without it.
    const computed = before.workers.find((worker) => worker.name === victim.name)?.pendingShards.length === 0;
    const othersComputing = before.workers.some(
      (worker) => worker.name !== victim.name && worker.pendingShards.length > 0,
    );
    if (before.phase !== 'training' || before.step < 2 || !computed || !othersComputing) continue;
    tries += 1;
    victim.process.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const frozen = await status(target);
    const held = frozen?.workers.find((worker) => worker.name === victim.name);
    if (held?.pendingShards.length === 0 && frozen?.reduction?.workers.includes(held.id)) {
      return frozen.reduction.step;
    }
    victim.process.kill('SIGCONT');
  }
  return undefined;
}
