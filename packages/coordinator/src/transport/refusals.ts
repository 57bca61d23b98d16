import type { IncomingMessage } from 'node:http';
import type { Telemetry } from '../telemetry/telemetry.js';

/** Connections the transport refused (bad token, rate limit, failed TLS handshake): counted and recorded. */
export class Refusals {
  authFailures = 0;
  refusedConnections = 0;

  constructor(private readonly telemetry: Telemetry) {}

  refused(request: IncomingMessage, status: number, reason: string): void {
    const peer = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
    if (status === 401) this.authFailures += 1;
    else this.refusedConnections += 1;
    this.telemetry.record({
      type: status === 401 ? 'auth-failure' : 'connection-refused',
      peer,
      status,
      reason,
    });
  }

  /** A TLS connection dropped before or during its handshake: no HTTP status (0). */
  tlsRefused(from: string, reason: string): void {
    this.refusedConnections += 1;
    this.telemetry.record({ type: 'connection-refused', peer: from, status: 0, reason });
  }
}
