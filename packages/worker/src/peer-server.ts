import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  AUTH_HEADER,
  AuthVerifier,
  CallosumError,
  type Codec,
  ConnectionRateLimit,
  createUpgradeServer,
  ErrorCodes,
  isCallosumError,
  isLoopbackHost,
  type PeerMessage,
  parsePeerMessage,
  refuseUpgrade,
} from '@callosum/core';
import { type WebSocket, WebSocketServer } from 'ws';
import type { PeerTls } from './options.js';
import { peerTlsServerOptions } from './peer-tls.js';

export interface PeerServerOptions {
  /** Host to listen on and to advertise; without a token, loopback only. */
  readonly host: string;
  readonly port: number;
  /** The run's token; every peer must prove it knows it. */
  readonly token: string | undefined;
  /** Serve wss:// with this certificate, to peers presenting a certificate the CA signed (mutual TLS). */
  readonly tls: PeerTls | undefined;
  /** Largest frame a peer may send: its gradient rows for this worker's chunk, and room to spare. */
  readonly maxPayload: number;
  readonly codec: Codec;
  /** Each valid message, with the bytes of its frame. */
  readonly onMessage: (message: PeerMessage, frameBytes: number) => void;
  readonly log: (line: string) => void;
}

export interface PeerServer {
  /** host:port, as peers are told to reach this worker. */
  readonly address: string;
  close(): Promise<void>;
}

/** Connection attempts per address: a burst, then a steady rate (a peer opens one link and keeps it). */
const PEER_CONNECTION_RATE = { perSecond: 20, burst: 40 };

/** More peer connections than any ring needs at once are refused (each peer opens one). */
const MAX_PEER_CONNECTIONS = 1024;

/**
 * Where a ring worker's peers send it gradient rows and mean chunks. Guarded as the coordinator's port
 * is: connection attempts rate-limited per address, with TLS a certificate from the peers' CA (mutual
 * TLS), the token proved in the upgrade (401 before any WebSocket exists), frames bounded as they
 * arrive, every message validated. A peer that sends something invalid is disconnected; the reduction
 * it spoiled is redone by the coordinator.
 */
export async function startPeerServer(options: PeerServerOptions): Promise<PeerServer> {
  const { host, token, codec, log } = options;
  const listenHost = host.replace(/^\[(.*)\]$/, '$1');
  if (token === undefined && !isLoopbackHost(listenHost)) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `the ring topology listens for peers on ${host} without a token: set CALLOSUM_TOKEN (or --token-file), or run on loopback`,
    );
  }
  const verifier = token === undefined ? undefined : new AuthVerifier(token);
  const rateLimit = new ConnectionRateLimit(PEER_CONNECTION_RATE.perSecond, PEER_CONNECTION_RATE.burst);
  const sockets = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: options.maxPayload,
  });
  const refuse = (socket: Duplex, status: string, why: string, from: string) => {
    log(`peer connection from ${from} refused: ${why}`);
    refuseUpgrade(socket, status);
  };
  let tlsRefusals = 0;
  const server = createUpgradeServer({
    tls: options.tls === undefined ? undefined : peerTlsServerOptions(options.tls),
    handshakeRate: PEER_CONNECTION_RATE,
    onRequest: (_request, response) => {
      response.statusCode = 404;
      response.end();
    },
    onTlsRefused: (from, reason) => {
      // A flood of failing handshakes must not become a flood of log lines: the first 20, then every 100th.
      tlsRefusals += 1;
      if (tlsRefusals <= 20 || tlsRefusals % 100 === 0)
        log(`peer connection from ${from} refused: ${reason} (${tlsRefusals} TLS refusals so far)`);
    },
    onUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      const from = request.socket.remoteAddress ?? 'unknown';
      if (!rateLimit.allow(from)) return refuse(socket, '429 Too Many Requests', 'too many attempts', from);
      if (sockets.clients.size >= MAX_PEER_CONNECTIONS) {
        return refuse(socket, '503 Service Unavailable', 'too many peer connections', from);
      }
      const header = request.headers[AUTH_HEADER];
      const verdict = verifier?.verify(Array.isArray(header) ? header[0] : header) ?? { ok: true };
      if (!verdict.ok) return refuse(socket, '401 Unauthorized', verdict.reason, from);
      sockets.handleUpgrade(request, socket, head, (peer) => accept(peer, from));
    },
  });
  // Pending handshakes and refused upgrades count too, so a flood cannot hold unbounded sockets.
  server.maxConnections = MAX_PEER_CONNECTIONS * 2;
  function accept(peer: WebSocket, from: string): void {
    peer.on('error', (error) => log(`peer ${from}: ${error.message}`));
    peer.on('message', (frame: Buffer, isBinary: boolean) => {
      try {
        if (!isBinary)
          throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, 'text frames are not part of the protocol');
        options.onMessage(parsePeerMessage(codec.decode(frame)), frame.byteLength);
      } catch (error) {
        const code = isCallosumError(error) ? error.code : ErrorCodes.MALFORMED_MESSAGE;
        log(`peer ${from}: ${code}: ${error instanceof Error ? error.message : String(error)}; disconnected`);
        peer.close(1008, code);
      }
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, listenHost, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const advertised = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return {
    address: `${advertised}:${port}`,
    async close() {
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
