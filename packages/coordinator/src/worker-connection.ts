import {
  type Codec,
  type CoordinatorMessage,
  type ErrorCode,
  ErrorCodes,
  isCallosumError,
  parseWorkerMessage,
  type WorkerMessage,
  type WorkerPhase,
} from '@callosum/core';
import type WebSocket from 'ws';

/**
 * Membership states, driven by the handshake, heartbeats and shard deadlines:
 * joining (socket open, no valid hello yet) → healthy (welcomed; gets work) → suspect (a shard went
 * past the straggler deadline; gets no work until it is heard from again, then healthy) → gone (closed,
 * or evicted: silent past the heartbeat timeout or past the hard shard deadline).
 */
export type WorkerState = 'joining' | 'healthy' | 'suspect' | 'gone';

export interface WorkerInfo {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly backend: string;
  readonly state: WorkerState;
  readonly phase: WorkerPhase;
}

/** One worker's socket, with its identity, state and the weights version it holds. */
export class WorkerConnection {
  state: WorkerState = 'joining';
  name = '';
  backend = '';
  phase: WorkerPhase = 'idle';
  /** Weights version last sent on this socket (-1: none). Messages on one socket arrive in order. */
  weightsVersion = -1;
  lastHeardAt = Date.now();
  /** Unusable gradients (non-finite, wrong length or counts) in a row; reset by a good one. */
  badResults = 0;
  /** The step the worker last said it started computing (from its heartbeats). */
  computingStep: number | undefined;
  /** Whether the worker's hello announced protocol 1.1 or later, which reads tensor frames. */
  readsTensorFrames = false;

  constructor(
    readonly id: string,
    readonly address: string,
    private readonly socket: WebSocket,
    private readonly codec: Codec,
    /** Most bytes that may wait unsent for this peer; ws itself queues without limit. */
    private readonly maxBufferedBytes: number,
    /** Called instead of sending when the peer has stopped reading. */
    private readonly onSlowReader: (bufferedBytes: number) => void,
  ) {}

  get info(): WorkerInfo {
    return {
      id: this.id,
      name: this.name,
      address: this.address,
      backend: this.backend,
      state: this.state,
      phase: this.phase,
    };
  }

  /** Human-readable identity for log lines. */
  get label(): string {
    return `${this.id}${this.name ? ` (${this.name}, ${this.address})` : ` (${this.address})`}`;
  }

  send(message: CoordinatorMessage): void {
    this.sendFrame(this.codec.encode(message, { tensorFrame: this.readsTensorFrames }));
  }

  /** Sends an already encoded frame (weights are encoded once and sent to every worker). */
  sendFrame(frame: Uint8Array): void {
    if (this.state === 'gone') return;
    // What is still queued from earlier frames: a reading peer drains it between steps.
    const buffered = this.socket.bufferedAmount;
    if (buffered > this.maxBufferedBytes) {
      this.onSlowReader(buffered);
      return;
    }
    this.socket.send(frame);
  }

  /** Decodes and validates one frame; throws a CallosumError naming what is wrong. */
  decode(frame: Buffer): WorkerMessage {
    this.lastHeardAt = Date.now();
    return parseWorkerMessage(this.codec.decode(frame));
  }

  /**
   * Starts the closing handshake; `code` is a WebSocket close code, `reason` at most 123 bytes.
   * Resolves when the socket has closed.
   */
  close(code: number, reason: string): Promise<void> {
    this.state = 'gone';
    if (this.socket.readyState === this.socket.CLOSED) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    this.socket.close(code, Buffer.from(reason).subarray(0, 123).toString());
    return closed;
  }

  /** Drops the connection at once, e.g. for a peer that stopped reading. */
  terminate(): void {
    this.state = 'gone';
    this.socket.terminate();
  }
}

export function describeError(error: unknown): { code: ErrorCode; message: string } {
  if (isCallosumError(error)) return { code: error.code, message: error.message };
  return { code: ErrorCodes.INTERNAL, message: error instanceof Error ? error.message : String(error) };
}
