import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  batchFromBytes,
  buildModel,
  computeGradients,
  createMsgpackCodec,
  fromWireTensor,
  gradientReply,
  loadMnist,
  parameterLayout,
  parseCoordinatorMessage,
  writeFlatWeights,
} from '@callosum/core';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startCoordinator } from './coordinator.js';

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
 * gradients, sends them in the framing that version allows, and records how the weights reached it.
 */
async function connectWorker(url: string, minor: number) {
  const codec = createMsgpackCodec();
  const network = buildModel(model);
  const layout = parameterLayout(network);
  const socket = new WebSocket(url, { perMessageDeflate: false });
  const received: { firstByte: number; version: number; weights: Float32Array }[] = [];
  let weights: Float32Array | undefined;
  socket.on('message', (frame: Buffer) => {
    const message = parseCoordinatorMessage(codec.decode(frame));
    if (message.type === 'weights') {
      weights = fromWireTensor(message.weights, 'float32').slice();
      received.push({ firstByte: frame[0] as number, version: message.version, weights });
    } else if (message.type === 'compute') {
      writeFlatWeights(network, weights as Float32Array, layout);
      const count = message.labels.shape[0] as number;
      const batch = batchFromBytes(
        fromWireTensor(message.images, 'uint8', [count, 28, 28]),
        fromWireTensor(message.labels, 'uint8', [count]),
      );
      const result = computeGradients(network, batch, layout);
      const reply = gradientReply(message, result, { decodeMs: 0, computeMs: 0 });
      socket.send(codec.encode(reply, { tensorFrame: minor >= 1 }));
    } else if (message.type === 'evaluate') {
      const count = message.labels.shape[0] as number;
      socket.send(
        codec.encode({
          type: 'evaluation',
          round: message.round,
          shard: message.shard,
          lossSum: 0,
          correct: 0,
          count,
          timings: { decodeMs: 0, computeMs: 0 },
        }),
      );
    }
  });
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(
    codec.encode({
      type: 'hello',
      protocol: { major: 1, minor },
      workerName: `protocol-1.${minor}`,
      backend: 'cpu',
      pid: minor,
      hostname: 'here',
    }),
  );
  return { received, closed: new Promise((resolve) => socket.once('close', resolve)) };
}

describe('framing by protocol version', () => {
  it('sends a 1.0 worker plain MessagePack and a 1.1 worker tensor frames: the same weights either way', async () => {
    outDir = await mkdtemp(join(tmpdir(), 'callosum-framing-'));
    const dataset = await loadMnist();
    const coordinator = await startCoordinator({
      outDir,
      dataset,
      training: { model, batchSize: 32, maxSteps: STEPS, seed: 3, maxShift: 0 },
      minWorkers: 2,
      log: () => {},
    });
    const old = await connectWorker(coordinator.url, 0);
    const current = await connectWorker(coordinator.url, 1);
    const summary = await coordinator.result;
    await Promise.all([old.closed, current.closed]);

    expect(summary.steps).toBe(STEPS);
    expect(old.received.map((entry) => entry.version)).toEqual([0, 1, 2, 3, 4]);
    expect(current.received.map((entry) => entry.version)).toEqual([0, 1, 2, 3, 4]);
    for (const entry of old.received) expect(entry.firstByte).not.toBe(TENSOR_FRAME_FIRST_BYTE);
    for (const entry of current.received) expect(entry.firstByte).toBe(TENSOR_FRAME_FIRST_BYTE);
    old.received.forEach((entry, index) => {
      expect(entry.weights).toEqual(current.received[index]?.weights);
    });
    // The run trained: the weights moved.
    expect(old.received[STEPS]?.weights).not.toEqual(old.received[0]?.weights);
  });
});
