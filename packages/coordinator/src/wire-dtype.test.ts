import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  computeGradients,
  createMsgpackCodec,
  floatsFromWire,
  floatsToWire,
  gradientReply,
  instantiateTask,
  isCallosumError,
  loadMnist,
  loadModel,
  type MnistDataset,
  mnistTask,
  parseCoordinatorMessage,
  readFlatWeights,
  samplesFromWire,
  toSampleBatch,
  type Welcome,
  type WireDtype,
  writeFlatWeights,
} from '@callosum/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startCoordinator } from './coordinator.js';
import type { StepReport } from './options.js';
import { emptyEvaluation, protocolHello } from './test-support/protocol-worker.js';

// 12,730 parameters: small enough that every frame is plain MessagePack, so sizes are easy to reason about.
const model = { name: 'mlp', options: { hidden: [16] } };
const PARAMETERS = 12_730;
const STEPS = 4;
let dataset: MnistDataset;
const outDirs: string[] = [];

beforeAll(async () => {
  dataset = await loadMnist();
});
afterAll(async () => {
  await Promise.all(outDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function start(wireDtype: WireDtype, extra: { log?: (line: string) => void } = {}) {
  const outDir = await mkdtemp(join(tmpdir(), 'callosum-wire-dtype-'));
  outDirs.push(outDir);
  const steps: StepReport[] = [];
  const statuses: unknown[] = [];
  const coordinator = await startCoordinator({
    outDir,
    dataset,
    training: { model, batchSize: 32, maxSteps: STEPS, seed: 3, maxShift: 0 },
    wireDtype,
    log: () => {},
    ...extra,
    onStep: async (report) => {
      steps.push(report);
      const status = await fetch(`${coordinator.url.replace('ws', 'http')}/status`);
      statuses.push(((await status.json()) as { lastStepBytes: unknown }).lastStepBytes);
    },
  });
  return { coordinator, steps, statuses };
}

/**
 * A worker written against the protocol, announcing 1.`minor`: it computes real gradients and sends them
 * in the dtype its welcome names (or, `infinite`, a gradient of ±Infinity in it), and counts the bytes of
 * every frame of each step, both ways.
 */
async function connectWorker(url: string, minor: number, behaviour: 'honest' | 'infinite' = 'honest') {
  const codec = createMsgpackCodec();
  const network = instantiateTask(mnistTask(model), 0);
  const socket = new WebSocket(url, { perMessageDeflate: false });
  let welcome: Welcome | undefined;
  let shutdown: unknown;
  const weights: { version: number; dtype: string; values: Float32Array }[] = [];
  /** Bytes of the frames of training step s (weights, compute, gradient), by s. */
  const stepBytes: number[] = [];
  let pendingWeightsBytes = 0;
  socket.on('message', (frame: Buffer) => {
    const message = parseCoordinatorMessage(codec.decode(frame));
    const wireDtype = welcome?.wireDtype ?? 'float32';
    if (message.type === 'welcome') welcome = message;
    if (message.type === 'shutdown') shutdown = message;
    if (message.type === 'weights') {
      pendingWeightsBytes = frame.byteLength;
      const values = floatsFromWire(message.weights, wireDtype, [PARAMETERS]);
      weights.push({ version: message.version, dtype: message.weights.dtype, values });
    } else if (message.type === 'compute') {
      writeFlatWeights(network.model, weights.at(-1)?.values as Float32Array, network.layout);
      const result = computeGradients(network, toSampleBatch(samplesFromWire(message), network.conversion));
      const reply = gradientReply(message, result, { decodeMs: 0, computeMs: 0 }, wireDtype);
      const gradient =
        behaviour === 'honest'
          ? reply.gradient
          : floatsToWire(new Float32Array(PARAMETERS).fill(Number.POSITIVE_INFINITY), wireDtype, 'gradient');
      const sent = codec.encode({ ...reply, gradient }, { tensorFrame: true });
      stepBytes[message.step] = pendingWeightsBytes + frame.byteLength + sent.byteLength;
      pendingWeightsBytes = 0;
      socket.send(sent);
    } else if (message.type === 'evaluate') {
      socket.send(codec.encode(emptyEvaluation(message)));
    }
  });
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(codec.encode(protocolHello(minor)));
  return {
    weights,
    stepBytes,
    get welcome() {
      return welcome;
    },
    get shutdown() {
      return shutdown;
    },
    closed: new Promise((resolve) => socket.once('close', resolve)),
  };
}

describe('wire dtypes (protocol 1.6)', () => {
  it('a float16 run refuses a 1.5 worker, sends float16 weights rounded from float32 ones it keeps, and counts every byte of each step', async () => {
    const { coordinator, steps, statuses } = await start('float16');
    const old = await connectWorker(coordinator.url, 5);
    await old.closed;
    expect(old.shutdown).toMatchObject({
      code: 'VERSION_MISMATCH',
      reason: 'protocol 1.6 or later needed (float16 weights and gradients); worker speaks 1.5',
    });
    const worker = await connectWorker(coordinator.url, 6);
    const summary = await coordinator.result;
    await worker.closed;

    expect(worker.welcome?.wireDtype).toBe('float16');
    expect(summary.steps).toBe(STEPS);
    expect(worker.weights.map(({ version, dtype }) => [version, dtype])).toEqual(
      [0, 1, 2, 3, 4].map((version) => [version, 'float16']),
    );
    // The coordinator's weights, saved with the model, are float32: what it sent was their rounding.
    const saved = await loadModel(summary.modelDir);
    const master = readFlatWeights(saved, instantiateTask(mnistTask(model), 0).layout);
    saved.dispose();
    const rounded = floatsFromWire(floatsToWire(master, 'float16', 'weights'), 'float16');
    expect(worker.weights.at(-1)?.values).toEqual(rounded);
    expect(master).not.toEqual(rounded);

    // Each step's bytes are exactly its frames: weights and compute request out, gradient in; one
    // worker is also the busiest. /status shows the latest step's.
    expect(steps.map((step) => step.bytes)).toEqual(
      worker.stepBytes.map((bytes) => ({ coordinator: bytes, busiestWorker: bytes })),
    );
    expect(statuses).toEqual(steps.map((step) => step.bytes));
    const mean = Math.round(worker.stepBytes.reduce((sum, bytes) => sum + bytes, 0) / STEPS);
    expect(summary.bytesPerStep).toEqual({ coordinator: mean, busiestWorker: mean });
    // Weights and gradient in 2 bytes per parameter, plus the shard (32 images of 784 bytes).
    expect(mean).toBeGreaterThan(2 * 2 * PARAMETERS + 32 * 784);
    expect(mean).toBeLessThan(2 * 2 * PARAMETERS + 32 * 784 + 2_000);
  });

  it('warns that a run with micro-batches is no longer identical at any worker count in 16 bits', async () => {
    const log: string[] = [];
    const outDir = await mkdtemp(join(tmpdir(), 'callosum-wire-dtype-'));
    outDirs.push(outDir);
    const coordinator = await startCoordinator({
      outDir,
      dataset,
      training: { model, batchSize: 32, maxSteps: STEPS, microBatchSize: 8 },
      wireDtype: 'bfloat16',
      log: (line) => log.push(line),
    });
    await coordinator.stop('test over');
    expect(log.filter((line) => line.includes('warning'))).toEqual([
      expect.stringMatching(
        /gradients travel as bfloat16, .* weights of this run with micro-batches depend on the worker count/,
      ),
    ]);
  });

  it('in float16, rejects an Infinity saying it may be an overflow; with one worker the run stops as diverged, saying so', async () => {
    const log: string[] = [];
    const { coordinator } = await start('float16', { log: (line) => log.push(line) });
    const worker = await connectWorker(coordinator.url, 6, 'infinite');
    const error = await coordinator.result.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    await worker.closed;
    expect(isCallosumError(error, 'TRAINING_DIVERGED')).toBe(true);
    expect((error as Error).message).toMatch(
      /non-finite gradient\/loss on every worker: shard 0: gradient\[0\] is Infinity \(the run sends float16, whose largest value is 65504: an Infinity may be a larger gradient; wire dtype bfloat16 keeps float32's range\)$/,
    );
  });
});
