import {
  type CallosumError,
  createMsgpackCodec,
  floatsFromWire,
  parseCoordinatorMessage,
} from '@callosum/core';
import { describe, expect, it } from 'vitest';
import type { ShardRequest } from '../dispatch/shard-dispatcher.js';
import type { WorkerConnection } from './connection.js';
import { ShardDelivery } from './shard-delivery.js';

/**
 * Recording stand-ins for connections (what is sent and the weights version held); the framing itself
 * goes over real sockets in coordinator.test.ts and framing.test.ts.
 */
function connection(readsTensorFrames: boolean) {
  let held = -1;
  const frames: Uint8Array[] = [];
  const requests: ShardRequest[] = [];
  const stub = {
    readsTensorFrames,
    holdsWeights: (version: number) => held === version,
    sendWeights(version: number, frame: Uint8Array) {
      held = version;
      frames.push(frame);
      return false; // kept here, as a socket keeps a frame it was given
    },
    send: (request: ShardRequest) => requests.push(request),
    sendTogether: (send: () => void) => send(),
  };
  return { worker: stub as unknown as WorkerConnection, frames, requests };
}

const request = (shard: number, weightsVersion: number) =>
  ({ type: 'compute', step: weightsVersion, shard, weightsVersion }) as ShardRequest;

describe('ShardDelivery', () => {
  it('sends the weights ahead of a request once per version, encoded once per framing for all workers', () => {
    const current = { step: 3, weights: Float32Array.from([1, 2, 3]) };
    const delivery = new ShardDelivery(current, createMsgpackCodec());
    const [a, b, old] = [connection(true), connection(true), connection(false)];
    delivery.send(a.worker, request(0, 3));
    delivery.send(a.worker, request(1, 3));
    delivery.send(b.worker, request(2, 3));
    delivery.send(old.worker, request(3, 3));
    expect(a.frames).toHaveLength(1);
    expect(a.requests.map((sent) => sent.shard)).toEqual([0, 1]);
    // The same frame object: encoded once for both tensor-frame readers; plain MessagePack for a 1.0 peer.
    expect(b.frames[0]).toBe(a.frames[0]);
    expect(old.frames[0]).not.toBe(a.frames[0]);
    current.step = 4;
    current.weights = Float32Array.from([4, 5, 6]);
    delivery.send(a.worker, request(4, 4));
    expect(a.frames).toHaveLength(2);
    expect(a.frames[1]).not.toEqual(a.frames[0]);
  });

  it('sends the weights in the wire dtype; weights it cannot carry are not sent, and the round is told after the call', async () => {
    const current = { step: 0, weights: Float32Array.from([1, 70_000, 3]) };
    const unsendable: CallosumError[] = [];
    const codec = createMsgpackCodec();
    const delivery = new ShardDelivery(current, codec, {
      wireDtype: 'float16',
      unsendable: (error) => unsendable.push(error),
    });
    const worker = connection(true);
    delivery.send(worker.worker, request(0, 0));
    expect([worker.frames, worker.requests, unsendable]).toEqual([[], [], []]);
    await Promise.resolve();
    expect(unsendable.map(({ code, message }) => [code, message])).toEqual([
      ['NON_FINITE', expect.stringMatching(/^weights of step 0\[1\] = 70000 overflows float16/)],
    ]);

    current.step = 1;
    current.weights = Float32Array.from([1, 1 / 3, -2]);
    delivery.send(worker.worker, request(0, 1));
    const sent = parseCoordinatorMessage(codec.decode(worker.frames[0] as Uint8Array));
    if (sent.type !== 'weights') throw new Error(sent.type);
    expect(sent.weights.dtype).toBe('float16');
    expect([...floatsFromWire(sent.weights, 'float16')]).toEqual([1, 0.333251953125, -2]);
    expect(worker.requests).toHaveLength(1);
  });

  it('refuses a request for weights the coordinator no longer holds', () => {
    const delivery = new ShardDelivery({ step: 5, weights: new Float32Array(3) }, createMsgpackCodec());
    expect(() => delivery.send(connection(true).worker, request(0, 4))).toThrow(/names weights 4.*holds 5/);
  });
});
