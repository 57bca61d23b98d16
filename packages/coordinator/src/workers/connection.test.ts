import type { AddressInfo } from 'node:net';
import { createMsgpackCodec, isCallosumError } from '@callosum/core';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { WireTraffic } from '../transport/wire-traffic.js';
import { WorkerConnection } from './connection.js';

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
      new WireTraffic(),
      limit,
      (buffered) => {
        reported = buffered;
      },
    );
    const frame = new Uint8Array(1024 * 1024);
    for (let sent = 0; sent < 200 && reported === undefined; sent++) {
      connection.sendWeights(sent, frame);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(reported).toBeGreaterThan(limit);
    // It refused before the queue grew far past the limit (one frame over, at most).
    expect(reported).toBeLessThanOrEqual(limit + frame.byteLength);
    peer.terminate();
  });

  it('moves between states only through named transitions, and throws on an illegal one', () => {
    // The state machine never touches the socket.
    const connection = new WorkerConnection(
      'w1',
      'test',
      {} as WebSocket,
      createMsgpackCodec(),
      new WireTraffic(),
      1,
      () => {},
    );
    const illegal = (transition: () => void) => {
      try {
        transition();
      } catch (error) {
        return isCallosumError(error, 'INTERNAL') ? (error as Error).message : `other error: ${error}`;
      }
      return 'no error';
    };
    expect(connection.state).toBe('joining');
    expect(illegal(() => connection.suspected())).toBe(
      'worker w1: no transition joining → suspect (only healthy → suspect)',
    );
    expect(illegal(() => connection.recovered())).toMatch(/no transition joining → healthy/);
    connection.welcomed({ name: 'a', backend: 'cpu', readsTensorFrames: true });
    expect(connection.info).toMatchObject({ state: 'healthy', name: 'a', backend: 'cpu' });
    expect(
      illegal(() => connection.welcomed({ name: 'b', backend: 'cpu', readsTensorFrames: true })),
    ).toMatch(/no transition healthy → healthy \(only joining → healthy\)/);
    expect(connection.name).toBe('a');
    connection.suspected();
    expect(illegal(() => connection.suspected())).toMatch(/no transition suspect → suspect/);
    connection.recovered();
    expect(connection.state).toBe('healthy');
    connection.gone();
    connection.gone();
    expect(illegal(() => connection.recovered())).toMatch(/no transition gone → healthy/);
    expect(illegal(() => connection.suspected())).toMatch(/no transition gone → suspect/);
    expect(connection.state).toBe('gone');
  });
});
