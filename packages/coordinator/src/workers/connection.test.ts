import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMsgpackCodec, isCallosumError } from '@callosum/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { ShardRequest } from '../dispatch/shard-dispatcher.js';
import { WireTraffic } from '../transport/wire-traffic.js';
import { WorkerConnection } from './connection.js';
import { ShardDelivery } from './shard-delivery.js';

let server: WebSocketServer | undefined;
const peers: WebSocket[] = [];
afterEach(() => {
  for (const peer of peers.splice(0)) peer.terminate();
  for (const client of server?.clients ?? []) client.terminate();
  server?.close();
});

const codec = createMsgpackCodec();

/**
 * A welcomed (tensor-frame) connection over a real loopback socket, with the stream under its
 * WebSocket to send frames together, and the open peer at the other end.
 */
async function welcomedConnection() {
  server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await new Promise((resolve) => server?.once('listening', resolve));
  const accepted = new Promise<[WebSocket, IncomingMessage]>((resolve) =>
    server?.once('connection', (socket, request) => resolve([socket, request])),
  );
  const peer = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  peers.push(peer);
  const opened = new Promise((resolve) => peer.once('open', resolve));
  const [socket, request] = await accepted;
  await opened;
  const connection = new WorkerConnection(
    'w1',
    'test',
    socket,
    codec,
    new WireTraffic(),
    1 << 30,
    () => {},
    request.socket,
  );
  connection.welcomed({ name: 'w1', backend: 'cpu', readsTensorFrames: true });
  return { peer, socket, request, connection };
}

const evaluateRequest = (weightsVersion: number) =>
  ({ type: 'evaluate', round: 0, shard: 0, weightsVersion }) as ShardRequest;

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

  // Two writes would wake the worker twice, and the first wake-up can hold up the second write (its
  // process takes the coordinator's core): the weights and the request leave in one write.
  it('sends a shard’s weights and request together: both while the stream is corked, which it is not after (real loopback socket)', async () => {
    const { peer, socket, request, connection } = await welcomedConnection();
    const received: { type: string }[] = [];
    peer.on('message', (frame: Buffer) => received.push(codec.decode(frame) as { type: string }));
    const corkedAtEachSend: number[] = [];
    const send = socket.send.bind(socket);
    socket.send = ((...args: Parameters<typeof send>) => {
      corkedAtEachSend.push(request.socket.writableCorked);
      send(...args);
    }) as typeof socket.send;

    const delivery = new ShardDelivery({ step: 3, weights: new Float32Array(50_000).fill(0.5) }, codec);
    delivery.send(connection, evaluateRequest(3));
    expect(corkedAtEachSend).toEqual([1, 1]);
    expect(request.socket.writableCorked).toBe(0);
    await vi.waitFor(() => expect(received.map((message) => message.type)).toEqual(['weights', 'evaluate']));
  });

  // The next version of the weights is encoded in the memory of the last one only when no socket was
  // given that frame: one still queued on a socket (the peer reads slowly here) must go out unchanged.
  it('does not write the next weights into the memory of weights still queued on a socket (real loopback socket)', async () => {
    const { peer, socket, connection } = await welcomedConnection();
    const firstAndLast: number[] = [];
    peer.on('message', (frame: Buffer) => {
      const message = codec.decode(frame) as { type: string; weights?: { bytes: Uint8Array } };
      if (message.type !== 'weights' || message.weights === undefined) return;
      const { bytes } = message.weights;
      const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      firstAndLast.push(values[0] as number, values[values.length - 1] as number);
    });
    const peerSocket = (peer as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    peerSocket.pause();
    // 16 MB of weights: more than the kernel's buffers take, so the first frame waits in ws's queue.
    const current = { step: 3, weights: new Float32Array(4 << 20).fill(3) };
    const delivery = new ShardDelivery(current, codec);
    delivery.send(connection, evaluateRequest(3));
    expect(socket.bufferedAmount).toBeGreaterThan(0);
    Object.assign(current, { step: 4 });
    current.weights.fill(4);
    delivery.send(connection, evaluateRequest(4));
    peerSocket.resume();
    await vi.waitFor(() => expect(firstAndLast).toHaveLength(4), { timeout: 10_000 });
    expect(firstAndLast).toEqual([3, 3, 4, 4]);
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
