import { afterPendingInput, type Cancel, systemClock } from '../dispatch/clock.js';
import type { WorkerConnection } from './connection.js';
import type { WorkerRegistry } from './registry.js';

export interface LivenessOptions {
  readonly heartbeatIntervalMs: number;
  /** A worker silent this long is reported. */
  readonly heartbeatTimeoutMs: number;
  /** A connection still joining this long after it opened is reported. */
  readonly handshakeTimeoutMs: number;
}

/** What liveness finds; the owner decides what to do (evict, close). */
export interface LivenessFindings {
  silent(worker: WorkerConnection, silentMs: number): void;
  noHello(worker: WorkerConnection): void;
}

/**
 * Whether workers are alive: every member is checked once per heartbeat interval against the
 * heartbeat timeout, and every new connection must say hello within the handshake timeout.
 */
export class Liveness {
  private readonly heartbeatCheck: NodeJS.Timeout;
  private readonly handshakes = new Map<WorkerConnection, Cancel>();
  private stopped = false;

  constructor(
    private readonly registry: WorkerRegistry,
    private readonly options: LivenessOptions,
    private readonly findings: LivenessFindings,
  ) {
    this.heartbeatCheck = setInterval(
      () => afterPendingInput(() => this.checkHeartbeats()),
      options.heartbeatIntervalMs,
    );
  }

  /**
   * Starts the handshake timeout of a connection that just opened (on the system clock: judged after
   * the sockets are read, and not counting a pause of this process).
   */
  joining(worker: WorkerConnection): void {
    const cancel = systemClock.after(this.options.handshakeTimeoutMs, () => {
      this.handshakes.delete(worker);
      if (worker.state === 'joining') this.findings.noHello(worker);
    });
    this.handshakes.set(worker, cancel);
  }

  /** The connection closed: its handshake timeout, if still running, is moot. */
  closed(worker: WorkerConnection): void {
    this.handshakes.get(worker)?.();
    this.handshakes.delete(worker);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeatCheck);
    for (const cancel of this.handshakes.values()) cancel();
    this.handshakes.clear();
  }

  private checkHeartbeats(): void {
    if (this.stopped) return; // a check deferred past stop()
    const now = Date.now();
    for (const worker of this.registry.all()) {
      const silentMs = now - worker.lastHeardAt;
      if (silentMs > this.options.heartbeatTimeoutMs) this.findings.silent(worker, silentMs);
    }
  }
}
