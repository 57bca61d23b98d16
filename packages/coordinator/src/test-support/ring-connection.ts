import { type CoordinatorMessage, createMsgpackCodec } from '@callosum/core';
import type WebSocket from 'ws';
import { WireTraffic } from '../transport/wire-traffic.js';
import { WorkerConnection } from '../workers/connection.js';
import type { WorkerRegistry } from '../workers/registry.js';

const codec = createMsgpackCodec();

/**
 * A real connection of worker `id` to a ring run, whose socket is a stand-in: every message the
 * coordinator sends it is decoded into `sent`. Added to `membership`, welcomed, listening for peers at
 * 127.0.0.1:4000 + `index`; `synced` (made available) by the caller once it holds what it should.
 */
export function ringConnection(
  id: string,
  index: number,
  membership: WorkerRegistry,
): { worker: WorkerConnection; sent: CoordinatorMessage[] } {
  const sent: CoordinatorMessage[] = [];
  const worker = new WorkerConnection(
    id,
    `test:${index}`,
    {
      readyState: 1,
      bufferedAmount: 0,
      send: (frame: Uint8Array) => sent.push(codec.decode(Buffer.from(frame)) as CoordinatorMessage),
    } as unknown as WebSocket,
    codec,
    new WireTraffic(),
    1 << 30,
    () => {},
  );
  membership.add(worker);
  worker.welcomed({ name: `worker-${id}`, backend: 'cpu', readsTensorFrames: false }, true);
  worker.listensAt(`127.0.0.1:${4000 + index}`);
  return { worker, sent };
}
