import type { Duplex } from 'node:stream';
import {
  CallosumError,
  type Codec,
  type CoordinatorMessage,
  type ErrorCode,
  ErrorCodes,
  type FrameFileLink,
  isCallosumError,
  parseWorkerMessage,
  type WorkerMessage,
  type WorkerPhase,
} from '@callosum/core';
import type WebSocket from 'ws';
import { workerLabel } from '../telemetry/worker-label.js';
import type { CloseCode } from '../transport/close-codes.js';
import type { WireTraffic } from '../transport/wire-traffic.js';

/**
 * Membership states, driven by the handshake, heartbeats and shard deadlines:
 * joining (socket open, no valid hello yet) → healthy (welcomed; gets work) ⇄ suspect (a shard went
 * past the straggler deadline; gets no work until it is heard from again) → gone (closed, or evicted:
 * silent past the heartbeat timeout, past the hard shard deadline, late on too many shards in a row, or
 * failing too many in a row). Any state may end in gone.
 * In a ring run a welcomed worker is syncing (no work) until it listens for peers and holds a replica
 * of the current step, and a healthy one whose replica fell behind goes back to syncing.
 */
export type WorkerState = 'joining' | 'syncing' | 'healthy' | 'suspect' | 'gone';

export interface WorkerInfo {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly backend: string;
  readonly state: WorkerState;
  readonly phase: WorkerPhase;
  /** Ring: where its peers reach it, once it said so. */
  readonly peerAddress?: string;
}

/** What a valid hello tells about the worker. */
export interface WorkerIdentity {
  readonly name: string;
  readonly backend: string;
  /** Whether its protocol (1.1 or later) reads tensor frames. */
  readonly readsTensorFrames: boolean;
}

/**
 * One worker's socket, with its identity, its state and the weights version it holds. The state moves
 * only through the named transitions below; each throws on a move the state machine does not have.
 */
export class WorkerConnection {
  #state: WorkerState = 'joining';
  #identity: WorkerIdentity = { name: '', backend: '', readsTensorFrames: false };
  #phase: WorkerPhase = 'idle';
  /** Weights version last sent on this socket (-1: none). Messages on one socket arrive in order. */
  #weightsVersion = -1;
  #lastHeardAt = Date.now();
  /** Frames received from this worker so far: whether it was heard from since a moment, whatever the clock. */
  #framesHeard = 0;
  /**
   * Shards in a row this worker failed or answered unusably (a failure, a rejected result) that another
   * worker then computed; reset by an accepted result of a training step.
   */
  #badResults = 0;
  /** Shards in a row on which it was late (straggler deadline); reset by any accepted result. */
  #lateShards = 0;
  /** The step the worker last said it started computing (from its heartbeats). */
  #computingStep: number | undefined;
  /** Ring: the host:port it listens on for its peers, once it said so. */
  #peerAddress: string | undefined;
  /** Set once the worker took the welcome's frame files: large frames go as files both ways. */
  #frameFiles: FrameFileLink | undefined;

  constructor(
    readonly id: string,
    readonly address: string,
    private readonly socket: WebSocket,
    private readonly codec: Codec,
    /** Where the bytes of its frames are counted, both ways. */
    private readonly traffic: WireTraffic,
    /** Most bytes that may wait unsent for this peer; ws itself queues without limit. */
    private readonly maxBufferedBytes: number,
    /** Called instead of sending when the peer has stopped reading. */
    private readonly onSlowReader: (bufferedBytes: number) => void,
    /** The stream the WebSocket writes to (the upgraded request's socket), to send frames together. */
    private readonly stream?: Pick<Duplex, 'cork' | 'uncork'>,
  ) {}

  get state(): WorkerState {
    return this.#state;
  }
  get name(): string {
    return this.#identity.name;
  }
  get backend(): string {
    return this.#identity.backend;
  }
  get readsTensorFrames(): boolean {
    return this.#identity.readsTensorFrames;
  }
  get phase(): WorkerPhase {
    return this.#phase;
  }
  get lastHeardAt(): number {
    return this.#lastHeardAt;
  }
  get framesHeard(): number {
    return this.#framesHeard;
  }
  get computingStep(): number | undefined {
    return this.#computingStep;
  }

  get peerAddress(): string | undefined {
    return this.#peerAddress;
  }

  /** joining → healthy (or syncing, in a ring run): its hello was accepted. */
  welcomed(identity: WorkerIdentity, syncFirst = false): void {
    this.transition('joining', syncFirst ? 'syncing' : 'healthy');
    this.#identity = identity;
  }

  /** It reads and writes frame files (it read the welcome's probe): large frames go through them. */
  useFrameFiles(link: FrameFileLink): void {
    this.#frameFiles = link;
  }

  /** Ring: where its peers reach it. */
  listensAt(address: string): void {
    this.#peerAddress = address;
  }

  /** syncing → healthy: it holds a replica of the current step. */
  synced(): void {
    this.transition('syncing', 'healthy');
  }

  /** healthy → syncing: its replica fell behind (it missed a step's reduction). */
  fellBehind(): void {
    this.transition('healthy', 'syncing');
  }

  /** healthy → suspect: a shard of its went past the straggler deadline. */
  suspected(): void {
    this.transition('healthy', 'suspect');
  }

  /** suspect → healthy: it was heard from again. */
  recovered(): void {
    this.transition('suspect', 'healthy');
  }

  /** Any state → gone (closing, closed, evicted). Final; repeating it changes nothing. */
  gone(): void {
    this.#state = 'gone';
  }

  private transition(from: WorkerState, to: WorkerState): void {
    if (this.#state !== from) {
      throw new CallosumError(
        ErrorCodes.INTERNAL,
        `worker ${this.id}: no transition ${this.#state} → ${to} (only ${from} → ${to})`,
      );
    }
    this.#state = to;
  }

  /** A heartbeat: what the worker is doing, and the step it is computing if any. */
  reportedPhase(phase: WorkerPhase, step: number | undefined): void {
    this.#phase = phase;
    this.#computingStep = phase === 'computing' ? step : undefined;
  }

  /** Whether it holds weights `version` already (sent on this socket). */
  holdsWeights(version: number): boolean {
    return this.#weightsVersion === version;
  }

  /** Ring: its replica is at `version` (it was sent the state, or applied a step with its peers). */
  holdsReplica(version: number): void {
    this.#weightsVersion = version;
  }

  /** After a failure its copy of the weights is not trusted: the next request sends them again. */
  forgetWeights(): void {
    this.#weightsVersion = -1;
  }

  /** Counts a shard it failed or answered unusably (that another worker computed); returns how many in a row. */
  badResult(): number {
    this.#badResults += 1;
    return this.#badResults;
  }

  /** Counts a shard it was late on; returns how many in a row, without an accepted result between. */
  lateShard(): number {
    this.#lateShards += 1;
    return this.#lateShards;
  }

  /**
   * One of its results was accepted: it is not late in a row any more, and, for a training step's result
   * (evaluations do not count towards eviction), not bad in a row either.
   */
  delivered(training: boolean): void {
    this.#lateShards = 0;
    if (training) this.#badResults = 0;
  }

  get info(): WorkerInfo {
    return {
      id: this.id,
      name: this.name,
      address: this.address,
      backend: this.backend,
      state: this.#state,
      phase: this.#phase,
      ...(this.#peerAddress === undefined ? {} : { peerAddress: this.#peerAddress }),
    };
  }

  /** Human-readable identity for log lines. */
  get label(): string {
    return workerLabel(this);
  }

  /** The fields by which events name the worker they are about. */
  get idNameAddress(): { worker: string; name: string; address: string } {
    return { worker: this.id, name: this.name, address: this.address };
  }

  send(message: CoordinatorMessage): void {
    this.sendFrame(this.codec.encode(message, { tensorFrame: this.readsTensorFrames }));
  }

  /**
   * Runs `send`; the frames it sends leave in one write. The worker wakes once, holding all it needs
   * (weights and request). Woken by the first of two writes, it can take the coordinator's core and hold
   * up the second: about a millisecond for the second worker's request, measured with two workers on
   * two cores.
   */
  sendTogether(send: () => void): void {
    this.stream?.cork();
    try {
      send();
    } finally {
      this.stream?.uncork();
    }
  }

  /**
   * Sends weights `version`, already encoded once for every worker, and remembers it holds them.
   * Returns whether the socket was not given the frame (it went as a file, or not at all).
   */
  sendWeights(version: number, frame: Uint8Array): boolean {
    const socketFree = this.sendFrame(frame, true);
    this.#weightsVersion = version;
    return socketFree;
  }

  /**
   * `broadcast`: the same frame goes to other workers too (one file for all of them). Returns whether
   * the socket was not given the frame: it does not refer to its memory after the call.
   */
  private sendFrame(frame: Uint8Array, broadcast = false): boolean {
    if (this.#state === 'gone') return true;
    // What is still queued from earlier frames, on the socket or as files it has not read: a reading
    // peer drains it between steps.
    const queued = this.socket.bufferedAmount + (this.#frameFiles?.unreadBytes() ?? 0);
    if (queued > this.maxBufferedBytes) {
      this.onSlowReader(queued);
      return true;
    }
    const sent = this.#frameFiles?.outgoing(frame, broadcast) ?? frame;
    this.socket.send(sent);
    // The frame's bytes, whichever way they went: what the step moved.
    this.traffic.sent(this.id, frame.byteLength);
    return sent !== frame;
  }

  /**
   * The memory under a frame it sent (a gradient, say) that nothing here reads any more: its next
   * frames may be read into it (FrameFileLink.recycle; ignored unless it was read from a file).
   */
  recycle(buffer: ArrayBuffer): void {
    this.#frameFiles?.recycle(buffer);
  }

  /** Decodes and validates one frame; throws a CallosumError naming what is wrong. */
  decode(frame: Buffer): WorkerMessage {
    this.#lastHeardAt = Date.now();
    this.#framesHeard += 1;
    const whole = this.#frameFiles?.incoming(frame) ?? frame;
    this.traffic.received(this.id, whole.byteLength);
    return parseWorkerMessage(this.codec.decode(whole));
  }

  /**
   * Starts the closing handshake; `code` is a WebSocket close code, `reason` at most 123 bytes.
   * Resolves when the socket has closed.
   */
  close(code: CloseCode, reason: string): Promise<void> {
    this.gone();
    if (this.socket.readyState === this.socket.CLOSED) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    this.socket.close(code, Buffer.from(reason).subarray(0, 123).toString());
    return closed;
  }
}

export function describeError(error: unknown): { code: ErrorCode; message: string } {
  if (isCallosumError(error)) return { code: error.code, message: error.message };
  return { code: ErrorCodes.INTERNAL, message: error instanceof Error ? error.message : String(error) };
}
