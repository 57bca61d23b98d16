import type { AddressInfo } from 'node:net';
import { createMsgpackCodec } from '@callosum/core';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { WorkerConnection } from './worker-connection.js';

let server: WebSocketServer | undefined;
afterEach(() => {
  for (const client of server?.clients ?? []) client.terminate();
  server?.close();
});

describe('WorkerConnection', () => {
  it('stops queueing for a peer that stopped reading, once the limit is passed (real loopback socket)', async () => {
    server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await new Promise((resolve) => server?.once('listening', resolve));
    const accepted = new Promise<WebSocket>((resolve) => server?.once('connection', resolve));
    const peer = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    await new Promise((resolve) => peer.once('open', resolve));
    // The peer stops reading: its kernel buffers fill, then the coordinator's side has to queue.
    (peer as unknown as { _socket: { pause(): void } })._socket.pause();

    const limit = 4 * 1024 * 1024;
    let reported: number | undefined;
    const connection = new WorkerConnection(
      'w1',
      'test',
      await accepted,
      createMsgpackCodec(),
      limit,
      (buffered) => {
        reported = buffered;
      },
    );
    const frame = new Uint8Array(1024 * 1024);
    for (let sent = 0; sent < 200 && reported === undefined; sent++) {
      connection.sendFrame(frame);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(reported).toBeGreaterThan(limit);
    // It refused before the queue grew far past the limit (one frame over, at most).
    expect(reported).toBeLessThanOrEqual(limit + frame.byteLength);
    peer.terminate();
  });
});
