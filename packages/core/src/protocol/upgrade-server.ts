import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { pemProblem } from './pem.js';
import { ConnectionRateLimit } from './rate-limit.js';

/**
 * PEM texts for an HTTPS server. With `clientCa`, clients must present a certificate it signed (mutual
 * TLS): one that does not is answered `403 Client certificate refused: <why>` whatever it asks, and
 * disconnected (see createUpgradeServer).
 */
export interface ServerTls {
  readonly cert: string;
  readonly key: string;
  readonly clientCa?: string;
}

export interface UpgradeServerOptions {
  readonly tls: ServerTls | undefined;
  /**
   * With TLS: connections per client address, a burst and then a steady rate, before any handshake;
   * beyond it a connection is dropped (there is no HTTP yet to answer 429 with).
   */
  readonly handshakeRate?: { readonly perSecond: number; readonly burst: number };
  /** Answers every plain HTTP request (the endpoints). */
  readonly onRequest: RequestListener;
  /**
   * Each WebSocket upgrade request: refuse it (`refuseUpgrade`) or hand it to ws. An error on its socket
   * (a client that resets the connection while it is refused) is absorbed, not left to crash the process.
   */
  readonly onUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /**
   * Told about each TLS connection refused, with the client's address and why: over the rate, a failed
   * handshake, or the code of the client certificate's refusal (once per connection, at its handshake).
   */
  readonly onTlsRefused?: (from: string, reason: string) => void;
}

const DEFAULT_HANDSHAKE_RATE = { perSecond: 20, burst: 64 };

/**
 * The reason phrase a TLS port answers plain HTTP with (status 400), unencrypted: a worker that dialled
 * ws:// recognises it (the statusMessage of its upgrade's response) and stops, rather than retry.
 */
export const PLAIN_HTTP_TO_TLS_REASON = 'Plain HTTP to a TLS port: use wss:// or https://';
const PLAIN_HTTP_STATUS = `400 ${PLAIN_HTTP_TO_TLS_REASON}`;
const PLAIN_HTTP_BODY = 'this port serves TLS: connect with wss:// (or https://), not ws:// (or http://)\n';
const PLAIN_HTTP_REFUSED =
  'TLS: the client spoke plain HTTP or WebSocket (ws://, http://) to this TLS port: it must use wss:// (or https://)';
/** A handshake not finished by then is dropped (Node's default keeps it 120 s). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The listening server of a WebSocket endpoint: HTTP, or HTTPS with `tls`. With TLS, a flood of
 * connections from one address is dropped before any handshake work, and slow handshakes time out.
 *
 * Mutual TLS refuses a client certificate after the handshake rather than in it: Node sends no TLS alert
 * when it rejects a certificate the CA did not sign, so a client refused in the handshake only sees its
 * connection dropped, which it cannot tell from a network fault (a worker would retry for minutes). Here
 * it gets a 403 naming the reason instead, and neither `onRequest` nor `onUpgrade` ever sees a request
 * of a connection whose certificate was refused.
 */
export function createUpgradeServer(options: UpgradeServerOptions): Server {
  const { tls } = options;
  if (tls !== undefined) requirePemTexts(tls);
  const mutual = tls?.clientCa !== undefined;
  const onRequest: RequestListener = (request, response) => {
    const refusal = mutual ? certificateRefusal(request.socket as TLSSocket) : undefined;
    if (refusal === undefined) return options.onRequest(request, response);
    response.writeHead(403, `Client certificate refused: ${refusal}`, { connection: 'close' });
    response.end(`client certificate refused: ${refusal}\n`);
  };
  const server: Server =
    tls === undefined
      ? createServer(onRequest)
      : createTlsServer(
          {
            cert: tls.cert,
            key: tls.key,
            handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
            ...(mutual ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
          },
          onRequest,
        );
  if (tls !== undefined) {
    const { perSecond, burst } = options.handshakeRate ?? DEFAULT_HANDSHAKE_RATE;
    const handshakes = new ConnectionRateLimit(perSecond, burst);
    // The address of each raw connection, kept for its TLS error: by then the socket is closed and
    // knows it no more. Dropped ones are marked, as their TLS error is only the echo of the drop.
    const addresses = new WeakMap<Socket, string>();
    const dropped = new WeakSet<Socket>();
    server.on('connection', (socket: Socket) => {
      const from = socket.remoteAddress ?? 'unknown';
      addresses.set(socket, from);
      if (handshakes.allow(from)) return;
      dropped.add(socket);
      options.onTlsRefused?.(from, 'too many connection attempts');
      socket.destroy();
    });
    server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
      // Node keeps the raw connection a TLS socket wraps as `_parent` (not in its typings).
      const raw = (socket as TLSSocket & { _parent?: Socket })._parent;
      if (raw !== undefined && dropped.has(raw)) return;
      const from = (raw === undefined ? undefined : addresses.get(raw)) ?? socket.remoteAddress ?? 'unknown';
      if (error.code === 'ERR_SSL_HTTP_REQUEST') {
        // A client that speaks plain HTTP (ws:// for wss://): OpenSSL would drop it without a word, which
        // the client cannot tell from a network fault. It is told in plain HTTP, which it does speak.
        options.onTlsRefused?.(from, PLAIN_HTTP_REFUSED);
        if (raw !== undefined && !raw.destroyed && raw.writable) {
          raw.on('error', () => raw.destroy());
          raw.end(
            `HTTP/1.1 ${PLAIN_HTTP_STATUS}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
              `Content-Length: ${PLAIN_HTTP_BODY.length}\r\n\r\n${PLAIN_HTTP_BODY}`,
          );
        }
        return;
      }
      options.onTlsRefused?.(from, `TLS: ${error.message}`);
    });
    if (mutual) {
      server.on('secureConnection', (socket: TLSSocket) => {
        const refusal = certificateRefusal(socket);
        if (refusal === undefined) return;
        options.onTlsRefused?.(
          socket.remoteAddress ?? 'unknown',
          `TLS: the client's certificate: ${refusal}`,
        );
        // It is answered 403 if it asks anything; one that does not is not kept waiting for.
        const idle = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS);
        socket.once('close', () => clearTimeout(idle));
      });
    }
  }
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node removed its own listener when it emitted the upgrade; ws adds one only once it takes the socket.
    socket.on('error', () => socket.destroy());
    const refusal = mutual ? certificateRefusal(request.socket as TLSSocket) : undefined;
    if (refusal === undefined) options.onUpgrade(request, socket, head);
    else refuseUpgrade(socket, `403 Client certificate refused: ${refusal}`);
  });
  return server;
}

/**
 * Refuses a certificate, key or client CA that holds no PEM block. Node takes an empty one without a
 * word: an empty certificate or key gives a server no client can handshake with, and an empty `ca`
 * (falsy) would verify client certificates against Node's public root CAs instead of the one meant.
 */
function requirePemTexts(tls: ServerTls): void {
  const texts: [string, string | undefined][] = [
    ['certificate', tls.cert],
    ['key', tls.key],
    ['client CA', tls.clientCa],
  ];
  for (const [what, text] of texts) {
    if (text === undefined && what === 'client CA') continue;
    // What is not a string (none given from a program) is as good as empty.
    const problem = pemProblem(typeof text === 'string' ? text : '');
    if (problem !== undefined) throw new Error(`the ${what} ${problem}`);
  }
}

/** Why a mutual-TLS client's certificate was refused (Node's verification code), if it was. */
function certificateRefusal(socket: TLSSocket): string | undefined {
  // Checked before `authorized`: Node 20 counts a TLS 1.3 session resumed from a connection that gave
  // no certificate as authorized (nodejs/node#35317), and calls a first connection without one
  // UNABLE_TO_GET_ISSUER_CERT, as if there were one.
  if (Object.keys(socket.getPeerCertificate()).length === 0) return 'none given';
  if (socket.authorized) return undefined;
  // Node's typings say Error; it holds the verification's code, such as UNABLE_TO_VERIFY_LEAF_SIGNATURE.
  const code = socket.authorizationError as unknown;
  return code === undefined || code === null ? 'not verified' : String(code);
}

/** Answers an upgrade request with an HTTP status (e.g. `401 Unauthorized`) and closes the connection. */
export function refuseUpgrade(socket: Duplex, status: string): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
