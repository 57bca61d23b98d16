import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ConnectionRateLimit } from './rate-limit.js';

/** PEM texts for an HTTPS server. With `clientCa`, clients must present a certificate it signed (mutual TLS). */
export interface ServerTls {
  readonly cert: string;
  readonly key: string;
  readonly clientCa?: string;
}

export interface UpgradeServerOptions {
  readonly tls: ServerTls | undefined;
  /** Answers every plain HTTP request (the endpoints). */
  readonly onRequest: RequestListener;
  /**
   * Each WebSocket upgrade request: refuse it (`refuseUpgrade`) or hand it to ws. An error on its socket
   * (a client that resets the connection while it is refused) is absorbed, not left to crash the process.
   */
  readonly onUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Told about each TLS connection refused before or during its handshake, with the client's address. */
  readonly onTlsRefused?: (from: string, reason: string) => void;
}

/** TLS handshakes per client address: a burst, then a steady rate; beyond it the connection is dropped. */
const HANDSHAKES_PER_SECOND = 20;
const HANDSHAKE_BURST = 64;
/** A handshake not finished by then is dropped (Node's default keeps it 120 s). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The listening server of a WebSocket endpoint: HTTP, or HTTPS with `tls`. With TLS, a flood of
 * connections from one address is dropped before any handshake work, and slow handshakes time out.
 */
export function createUpgradeServer(options: UpgradeServerOptions): Server {
  const { tls } = options;
  const server: Server =
    tls === undefined
      ? createServer(options.onRequest)
      : createTlsServer(
          {
            cert: tls.cert,
            key: tls.key,
            handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
            // Mutual TLS: the handshake itself fails for a client without a certificate from this CA.
            ...(tls.clientCa === undefined
              ? {}
              : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
          },
          options.onRequest,
        );
  if (tls !== undefined) {
    const handshakes = new ConnectionRateLimit(HANDSHAKES_PER_SECOND, HANDSHAKE_BURST);
    server.on('connection', (socket: Socket) => {
      const from = socket.remoteAddress ?? 'unknown';
      if (handshakes.allow(from)) return;
      options.onTlsRefused?.(from, 'too many connection attempts');
      socket.destroy();
    });
    server.on('tlsClientError', (error: Error, socket: Socket) => {
      options.onTlsRefused?.(socket.remoteAddress ?? 'unknown', `TLS: ${error.message}`);
    });
  }
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node removed its own listener when it emitted the upgrade; ws adds one only once it takes the socket.
    socket.on('error', () => socket.destroy());
    options.onUpgrade(request, socket, head);
  });
  return server;
}

/** Answers an upgrade request with an HTTP status (e.g. `401 Unauthorized`) and closes the connection. */
export function refuseUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
