import { createHash } from 'node:crypto';
import {
  assertFiniteShard,
  CallosumError,
  type Codec,
  type CoordinatorMessage,
  decodeCheckpoint,
  type ErrorCode,
  ErrorCodes,
  encodeCheckpoint,
  floatsFromWire,
  floatsToWire,
  type GradientResult,
  isCallosumError,
  type ParameterLayout,
  type PeerMessage,
  REPLICA_FORMAT_VERSION,
  type ReductionSettings,
  RingExchange,
  ringChunk,
  roundForWire,
  stepLabel,
  TrainingState,
  type WireDtype,
  type WorkerMessage,
} from '@callosum/core';
import type { PeerLinks } from './peer-links.js';

type Reduce = Extract<CoordinatorMessage, { type: 'reduce' }>;

/** What a ring member computes with: the model's weights are loaded from its replica after every step. */
export interface ReplicaModel {
  readonly layout: ParameterLayout;
  receiveWeights(version: number, weights: Float32Array): void;
}

export interface RingMemberContext {
  readonly model: ReplicaModel;
  readonly reduction: ReductionSettings;
  readonly codec: Codec;
  readonly links: PeerLinks;
  readonly toCoordinator: (message: WorkerMessage) => void;
  /**
   * What rows and mean chunks travel in. A 16-bit dtype rounds each gradient this worker holds and the
   * mean chunk it reduces, in place, before anything is sent: every rank then reduces and applies
   * exactly the values the others received, and the replicas stay identical.
   */
  readonly wireDtype: WireDtype;
  /**
   * Fault injection, for testing divergence detection only: after the replica reaches this step, one of
   * its weights is changed, as a memory fault would.
   */
  readonly corruptReplicaAt?: number | undefined;
  /** The coordinator reads `failure.attempt` (1.11): failures name the reduction attempt they end. */
  readonly failuresNameAttempt: boolean;
  readonly log: (line: string) => void;
}

/** The reduction in progress: what the coordinator asked, and how far this worker is with it. */
interface Reduction {
  readonly reduce: Reduce;
  readonly startedAt: number;
  /** The peer links' byte count when it started, and the bytes received for it since. */
  readonly sentBefore: number;
  received: number;
  /** This worker's chunk of the mean went to every peer. */
  chunkSent: boolean;
  /** The replica's digest, when the coordinator asked for it. */
  readonly replicaDigest: string | undefined;
  /** Done: reported reduced, or failed (reported as a failure); either way nothing more is sent. */
  ended: boolean;
}

/** Peer messages for a reduction this worker has not been told of yet are kept, up to this many. */
const MAX_EARLY_MESSAGES = 4096;

/**
 * A worker's part in the ring topology: its replica of the run's state (weights, optimizer, step),
 * the gradients of the shards it computed for the current step, and its side of each step's exchange
 * (train/ring-exchange.ts) with its peers. The replica changes only on the coordinator's `apply`, after
 * every peer holds the same mean gradient, so an abandoned reduction leaves every replica as it was.
 */
export class RingMember {
  private replica: TrainingState | undefined;
  private readonly exchange: RingExchange;
  /** Gradients of the shards computed for step `heldStep`, by shard index. */
  private held = new Map<number, GradientResult>();
  /** Shards of step `heldStep` whose compute failed here (and were not computed since). */
  private failed = new Set<number>();
  private heldStep = -1;
  private readonly spareBuffers: Float32Array[] = [];
  private current: Reduction | undefined;
  private early: { message: PeerMessage; bytes: number }[] = [];

  constructor(private readonly context: RingMemberContext) {
    this.exchange = new RingExchange(context.reduction, context.model.layout.totalSize);
  }

  /** Whether a reduction is under way (for the heartbeat's phase). */
  get reducing(): boolean {
    return this.current !== undefined && !this.current.ended;
  }

  /** The run's state from the coordinator: this worker's replica from now on. */
  loadReplica(message: Extract<CoordinatorMessage, { type: 'replica' }>): void {
    const checkpoint = decodeCheckpoint(Buffer.from(message.state), 'the replica sent by the coordinator');
    if (checkpoint.step !== message.version) {
      throw new CallosumError(
        ErrorCodes.MALFORMED_MESSAGE,
        `replica of step ${checkpoint.step} sent as version ${message.version}`,
      );
    }
    this.replica = TrainingState.restore(checkpoint, message.datasetSize, this.context.model.layout);
    this.current = undefined;
    this.context.model.receiveWeights(this.replica.step, this.replica.weights);
  }

  /**
   * A buffer for one shard's gradient of `step`; a new step releases the last step's. A compute request
   * means any reduction under way was abandoned (the step is being redone).
   */
  gradientBuffer(step: number): Float32Array {
    this.current = undefined;
    if (step !== this.heldStep) {
      for (const result of this.held.values()) this.spareBuffers.push(result.gradient);
      this.held = new Map();
      this.failed = new Set();
      this.heldStep = step;
    }
    return this.spareBuffers.pop() ?? new Float32Array(this.context.model.layout.totalSize);
  }

  /**
   * This worker could not compute `shard` of `step` (the coordinator is told by the failure itself). A
   * failure before the step's first gradient buffer was taken is of no shard held here, and not kept.
   */
  computeFailed(step: number, shard: number): void {
    if (step === this.heldStep) this.failed.add(shard);
  }

  /** Keeps a shard's gradient for the step's reduction; a non-finite one is refused (NON_FINITE). */
  hold(step: number, shard: number, result: GradientResult): void {
    assertFiniteShard(result, shard, this.context.model.layout.totalSize);
    roundForWire(result.gradient, this.context.wireDtype, `${stepLabel(step)}: shard ${shard}'s gradient`);
    if (step !== this.heldStep) {
      throw new CallosumError(
        ErrorCodes.INTERNAL,
        `a gradient of ${stepLabel(step)} held during ${stepLabel(this.heldStep)}`,
      );
    }
    const replaced = this.held.get(shard);
    if (replaced !== undefined) this.spareBuffers.push(replaced.gradient);
    this.held.set(shard, result);
    this.failed.delete(shard);
  }

  /** Starts this worker's side of a step's reduction: sends each peer its rows, then waits for theirs. */
  reduce(reduce: Reduce): void {
    const replica = this.requireReplica(reduce.step);
    const plan = { samples: reduce.samples, shards: reduce.shards, ranks: reduce.peers.length };
    // Announced with the step's requests, before the coordinator heard that one of them failed here.
    // That failure, sent first, gave this attempt up; the answer names the attempt (a 1.11 coordinator
    // then ignores it) and is not this worker's failure to log a second time.
    const failedHere = reduce.shards.findIndex(
      (shard, index) => shard.holder === reduce.rank && this.failed.has(index),
    );
    if (this.heldStep === replica.step && failedHere >= 0) {
      this.current = undefined;
      this.report(
        reduce,
        ErrorCodes.STALE_MESSAGE,
        `the compute of shard ${failedHere} failed on this worker`,
      );
      return;
    }
    const mine = new Map<number, GradientResult>();
    reduce.shards.forEach((shard, index) => {
      if (shard.holder !== reduce.rank) return;
      const result = this.heldStep === replica.step ? this.held.get(index) : undefined;
      if (result?.count !== shard.end - shard.start) {
        throw new CallosumError(
          ErrorCodes.STALE_MESSAGE,
          `${stepLabel(reduce.step)}: this worker holds no gradient of shard ${index} (${shard.end - shard.start} samples)`,
        );
      }
      mine.set(index, result);
    });
    this.exchange.begin(plan, reduce.rank, mine);
    const { links, codec } = this.context;
    this.current = {
      reduce,
      startedAt: performance.now(),
      sentBefore: links.sentBytes,
      received: 0,
      chunkSent: false,
      ended: false,
      replicaDigest: reduce.digest === true ? replicaDigest(replica) : undefined,
    };
    links.retain(new Set(reduce.peers.map((peer) => peer.address)));
    reduce.peers.forEach((peer, rank) => {
      if (rank === reduce.rank) return;
      const { shards, rows } = this.exchange.scatterTo(rank);
      const { start, end } = ringChunk(this.exchange.parameterCount, reduce.peers.length, rank);
      const what = `${stepLabel(reduce.step)}: rows for rank ${rank}`;
      const parts = {
        ...floatsToWire(rows, this.context.wireDtype, what),
        shape: [shards.length, end - start],
      };
      const message = {
        type: 'scatter',
        step: reduce.step,
        attempt: reduce.attempt,
        from: reduce.rank,
        shards: [...shards],
        parts,
      } as const;
      // Tensor frames: the receiver reads the rows in place, aligned, without a copy.
      links.send(peer.address, codec.encode(message, { tensorFrame: true }));
    });
    const early = this.early;
    this.early = [];
    for (const { message, bytes } of early) this.receive(message, bytes);
    this.progress();
  }

  /** Every peer holds the mean gradient: apply it to the replica and load the new weights. */
  apply(message: Extract<CoordinatorMessage, { type: 'apply' }>): void {
    const current = this.current;
    if (
      current === undefined ||
      current.reduce.step !== message.step ||
      current.reduce.attempt !== message.attempt ||
      !this.exchange.complete
    ) {
      throw new CallosumError(
        ErrorCodes.STALE_MESSAGE,
        `apply of ${stepLabel(message.step)}${message.attempt === 0 ? '' : ` (retry ${message.attempt})`}, which this worker has not reduced`,
      );
    }
    const replica = this.requireReplica(message.step);
    replica.applyStep(this.exchange.result());
    this.current = undefined;
    if (replica.step === this.context.corruptReplicaAt) {
      replica.weights[0] = (replica.weights[0] as number) + 1;
      this.context.log(`FAULT INJECTION: replica corrupted at step ${replica.step} (weight 0 changed by 1)`);
    }
    this.context.model.receiveWeights(replica.step, replica.weights);
  }

  /** The replica's state at step `version`, as checkpoint bytes. */
  stateAt(version: number): Uint8Array {
    return encodeCheckpoint(this.requireReplica(version).checkpoint(), REPLICA_FORMAT_VERSION);
  }

  /** A frame from a peer: rows or a mean chunk of the current reduction, or of one not yet announced. */
  receive(message: PeerMessage, bytes: number): void {
    const current = this.current;
    const step = this.replica?.step ?? -1;
    if (
      message.step < step ||
      (current !== undefined && message.step === step && message.attempt < current.reduce.attempt)
    ) {
      return; // An abandoned reduction's: nothing waits for it.
    }
    if (
      current === undefined ||
      message.attempt !== current.reduce.attempt ||
      message.step !== current.reduce.step
    ) {
      if (this.early.length < MAX_EARLY_MESSAGES) this.early.push({ message, bytes });
      return;
    }
    if (current.ended) return;
    current.received += bytes;
    try {
      if (message.type === 'scatter') {
        const rows = floatsFromWire(message.parts, this.context.wireDtype);
        this.exchange.receiveScatter(message.from, { shards: message.shards, rows });
      } else {
        this.exchange.receiveGather(message.from, floatsFromWire(message.chunk, this.context.wireDtype));
      }
      this.progress();
    } catch (error) {
      const code = isCallosumError(error) ? error.code : ErrorCodes.MALFORMED_MESSAGE;
      this.fail(
        current,
        code,
        `from peer rank ${message.from}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  /** A link to a peer failed while a reduction needs it: the coordinator redoes the step. */
  linkFailed(address: string, reason: string): void {
    const current = this.current;
    if (current === undefined || current.ended) return;
    const peer = current.reduce.peers.find((candidate) => candidate.address === address);
    this.fail(
      current,
      ErrorCodes.PEER_LOST,
      `lost the link to peer ${peer?.workerId ?? '?'} at ${address}: ${reason}`,
    );
  }

  /** Ends the reduction under way as failed, and tells the coordinator which attempt of which step. */
  private fail(current: Reduction, code: ErrorCode, reason: string): void {
    current.ended = true;
    this.report(current.reduce, code, reason);
  }

  /** Tells the coordinator that the reduction `reduce` asked for failed, naming its attempt if it reads it. */
  private report(reduce: Reduce, code: ErrorCode, reason: string): void {
    const { step, attempt } = reduce;
    this.context.toCoordinator({
      type: 'failure',
      code,
      message: `${stepLabel(step)}: ${reason}`.slice(0, 4000),
      step,
      ...(this.context.failuresNameAttempt ? { attempt } : {}),
    });
  }

  /** Sends this worker's chunk of the mean once every rank's rows are in; reports once the whole mean is. */
  private progress(): void {
    const current = this.current;
    if (current === undefined || current.ended) return;
    const { reduce } = current;
    if (this.exchange.chunkComplete && !current.chunkSent) {
      const chunk = this.exchange.reduceChunk();
      roundForWire(chunk, this.context.wireDtype, `${stepLabel(reduce.step)}: the mean gradient's chunk`);
      current.chunkSent = true;
      // Alone in the ring, the chunk is the whole mean and nobody waits for it.
      if (reduce.peers.length > 1) this.sendChunk(reduce, chunk);
    }
    if (!this.exchange.complete) return;
    current.ended = true;
    this.context.toCoordinator({
      type: 'reduced',
      step: reduce.step,
      attempt: reduce.attempt,
      peerBytes: this.context.links.sentBytes - current.sentBefore + current.received,
      reduceMs: performance.now() - current.startedAt,
      ...(current.replicaDigest === undefined ? {} : { replicaDigest: current.replicaDigest }),
    });
  }

  /** Sends this worker's chunk of the mean to every other rank, encoded once. */
  private sendChunk(reduce: Reduce, chunk: Float32Array): void {
    const frame = this.context.codec.encode(
      {
        type: 'gather',
        step: reduce.step,
        attempt: reduce.attempt,
        from: reduce.rank,
        chunk: floatsToWire(chunk, this.context.wireDtype, `${stepLabel(reduce.step)}: the mean chunk`),
      },
      { tensorFrame: true },
    );
    reduce.peers.forEach((peer, rank) => {
      if (rank !== reduce.rank) this.context.links.send(peer.address, frame);
    });
  }

  private requireReplica(step: number): TrainingState {
    if (this.replica?.step !== step) {
      throw new CallosumError(
        ErrorCodes.STALE_MESSAGE,
        `${stepLabel(step)} needs the replica after ${step} steps; this worker holds ${this.replica === undefined ? 'none' : `the one after ${this.replica.step}`}`,
      );
    }
    return this.replica;
  }
}

/** SHA-256 of a replica's weights, as lowercase hex: equal for replicas in lock-step. */
function replicaDigest(replica: TrainingState): string {
  const { weights } = replica;
  return createHash('sha256')
    .update(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength))
    .digest('hex');
}
