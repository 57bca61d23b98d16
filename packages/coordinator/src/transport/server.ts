import type { IncomingMessage, RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  CallosumError,
  ConnectionRateLimit,
  createUpgradeServer,
  ErrorCodes,
  refuseUpgrade,
  type ServerTls,
} from '@callosum/core';
import { type WebSocket, WebSocketServer } from 'ws';
import type { HttpRoutes } from './http-routes.js';

import type { ReadAccess } from './read-access.js';

/** For wss:// (core's ServerTls: with `clientCa`, mutual TLS). */
export type ServerTlsOptions = ServerTls;

export interface TransportOptions {
  readonly host: string;
  readonly tls?: ServerTlsOptions | undefined;
  readonly port: number;
  /** Largest frame a worker may send; ws closes the connection with 1009 beyond it, before buffering it. */
  readonly maxPayload: number;
  readonly onConnection: (socket: WebSocket, request: IncomingMessage) => void;
  /**
   * Upgrade attempts allowed per remote address: a burst, then a steady rate (429 beyond). With TLS, also
   * the connections per address let into a handshake (dropped beyond).
   */
  readonly connectionRate: { readonly perSecond: number; readonly burst: number };
  /** Told about every refused upgrade. */
  readonly onRefused: (request: IncomingMessage, status: number, reason: string) => void;
  /** With TLS: told about every connection dropped before or during its handshake. */
  readonly onTlsRefused: (from: string, reason: string) => void;
  /** Decides on each upgrade request before any WebSocket exists; a refusal is answered with 401. */
  readonly authenticate: (request: IncomingMessage) => { ok: true } | { ok: false; reason: string };
  /** The HTTP endpoints; anything else is 404. */
  readonly routes: HttpRoutes;
  /** Decides on each request for an endpoint that is not open (read-access.ts); a refusal is answered with 401. */
  readonly authorizeRead: ReadAccess;
}

export interface Transport {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The coordinator's listening socket: plain HTTP for its endpoints (health, status), WebSocket upgrades
 * for workers. `noServer` lets the upgrade be checked (authentication, limits) before any WebSocket exists.
 */
export async function startTransport(options: TransportOptions): Promise<Transport> {
  const sockets = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: options.maxPayload,
  });
  const handle: RequestListener = (request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    const route = Object.hasOwn(options.routes, path) ? options.routes[path] : undefined;
    if (route === undefined) {
      response.statusCode = 404;
      response.end();
    } else if (request.method !== 'GET' && request.method !== 'HEAD') {
      // Every endpoint only reads: a POST or DELETE is a mistake its sender should hear about.
      response.statusCode = 405;
      response.setHeader('Allow', 'GET, HEAD');
      response.end();
    } else if (!route.open && !options.authorizeRead(request, response)) {
      response.statusCode = 401;
      response.end();
    } else {
      route.handle(request, response);
    }
  };
  const rateLimit = new ConnectionRateLimit(options.connectionRate.perSecond, options.connectionRate.burst);
  const tls = options.tls;
  const server = withTlsNamed(tls, () =>
    createUpgradeServer({
      tls,
      handshakeRate: options.connectionRate,
      onTlsRefused: options.onTlsRefused,
      onRequest: handle,
      onUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (!rateLimit.allow(request.socket.remoteAddress ?? 'unknown')) {
          options.onRefused(request, 429, 'too many connection attempts');
          refuseUpgrade(socket, '429 Too Many Requests');
          return;
        }
        const verdict = options.authenticate(request);
        if (!verdict.ok) {
          options.onRefused(request, 401, verdict.reason);
          refuseUpgrade(socket, '401 Unauthorized');
          return;
        }
        sockets.handleUpgrade(request, socket, head, (ws) => options.onConnection(ws, request));
      },
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `${tls === undefined ? 'ws' : 'wss'}://${host}:${port}`,
    port,
    async close() {
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Runs `create` (which builds the TLS context from the certificate, key and CA), naming the options
 * when they cannot be used: a key that is not the certificate's, a file that is not PEM.
 */
function withTlsNamed<T>(tls: ServerTls | undefined, create: () => T): T {
  if (tls === undefined) return create();
  try {
    return create();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `the coordinator's TLS certificate, key or client CA (--tls-cert, --tls-key, --tls-client-ca) cannot be used: ${reason}`,
      { cause: error },
    );
  }
}
