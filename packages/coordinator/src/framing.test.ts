import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  computeGradients,
  createMsgpackCodec,
  fromWireTensor,
  gradientReply,
  instantiateTask,
  loadMnist,
  mnistTask,
  parseCoordinatorMessage,
  samplesFromWire,
  toSampleBatch,
  writeFlatWeights,
} from '@callosum/core';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startCoordinator } from './coordinator.js';
import { emptyEvaluation, protocolHello } from './test-support/protocol-worker.js';

// 25,450 parameters: a weights frame is over the 64 KiB from which tensors travel in tensor frames.
const model = { name: 'mlp', options: { hidden: [32] } };
const STEPS = 4;
const TENSOR_FRAME_FIRST_BYTE = 0xc1;
let outDir: string;

afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

/**
 * A worker written against the protocol directly, announcing protocol 1.`minor`: it computes real
 * gradients, sends them in tensor frames, and records how the weights reached it.
 */
async function connectWorker(url: string, minor: number) {
  const codec = createMsgpackCodec();
  const network = instantiateTask(mnistTask(model), 0);
  const socket = new WebSocket(url, { perMessageDeflate: false });
  const received: { firstByte: number; version: number; weights: Float32Array }[] = [];
  let shutdown: unknown;
  let weights: Float32Array | undefined;
  socket.on('message', (frame: Buffer) => {
    const message = parseCoordinatorMessage(codec.decode(frame));
    if (message.type === 'shutdown') shutdown = message;
    if (message.type === 'weights') {
      weights = fromWireTensor(message.weights, 'float32').slice();
      received.push({ firstByte: frame[0] as number, version: message.version, weights });
    } else if (message.type === 'compute') {
      writeFlatWeights(network.model, weights as Float32Array, network.layout);
      const batch = toSampleBatch(samplesFromWire(message), network.conversion);
      const result = computeGradients(network, batch);
      const reply = gradientReply(message, result, { decodeMs: 0, computeMs: 0 });
      socket.send(codec.encode(reply, { tensorFrame: true }));
    } else if (message.type === 'evaluate') {
      socket.send(codec.encode(emptyEvaluation(message)));
    }
  });
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(codec.encode(protocolHello(minor)));
  return {
    received,
    get shutdown() {
      return shutdown;
    },
    closed: new Promise((resolve) => socket.once('close', resolve)),
  };
}

describe('a third-party worker by protocol version', () => {
  it('refuses a 1.3 worker (shards carry typed features since 1.4) and trains a 1.4 worker, sending it weights in tensor frames', async () => {
    outDir = await mkdtemp(join(tmpdir(), 'callosum-framing-'));
    const dataset = await loadMnist();
    const coordinator = await startCoordinator({
      outDir,
      dataset,
      training: { model, batchSize: 32, maxSteps: STEPS, seed: 3, maxShift: 0 },
      minWorkers: 1,
      log: () => {},
    });
    const old = await connectWorker(coordinator.url, 3);
    await old.closed;
    expect(old.shutdown).toMatchObject({
      code: 'VERSION_MISMATCH',
      reason: expect.stringMatching(/1\.4 or later.*speaks 1\.3/),
    });
    const current = await connectWorker(coordinator.url, 4);
    const summary = await coordinator.result;
    await current.closed;

    expect(summary.steps).toBe(STEPS);
    expect(current.received.map((entry) => entry.version)).toEqual([0, 1, 2, 3, 4]);
    for (const entry of current.received) expect(entry.firstByte).toBe(TENSOR_FRAME_FIRST_BYTE);
    // The run trained: the weights moved.
    expect(current.received[STEPS]?.weights).not.toEqual(current.received[0]?.weights);
  });
});
