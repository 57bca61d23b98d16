import {
  CallosumError,
  decodeCheckpoint,
  ErrorCodes,
  encodeCheckpoint,
  type TrainingState,
  type WorkerMessage,
} from '@callosum/core';
import type { Clock } from '../dispatch/clock.js';
import type { WorkerConnection } from '../workers/connection.js';
import type { WorkerRegistry } from '../workers/registry.js';

export interface ReplicaSyncContext {
  readonly state: TrainingState;
  readonly membership: WorkerRegistry;
  /** Sent with the state: a replica's run length and schedule follow from it. */
  readonly datasetSize: number;
  readonly clock: Clock;
  /** Longest a replica may take to send its state. */
  readonly timeoutMs: number;
  readonly log: (line: string) => void;
}

interface StateRequest {
  readonly worker: WorkerConnection;
  readonly version: number;
  readonly resolve: (state: Uint8Array) => void;
  readonly reject: (error: Error) => void;
}

/**
 * The coordinator's copy of a ring run's state. The replicas apply every step; this copy only counts
 * them, and is brought up to date from a replica when something needs the weights (a checkpoint, the
 * saved model, a worker that joins). Joining workers get the state, then work.
 */
export class ReplicaSync {
  /** The step this copy's weights and optimizer state are at. */
  private currentAt: number;
  private pending: StateRequest | undefined;
  private encoded: { version: number; bytes: Uint8Array } | undefined;

  constructor(private readonly context: ReplicaSyncContext) {
    this.currentAt = context.state.step;
    context.membership.subscribe({ lost: (worker) => this.lost(worker) });
  }

  /** Counts a step the replicas applied; returns its learning rate. */
  advance(): number {
    return this.context.state.advanceWithoutApplying();
  }

  /** Brings this copy up to the replicas' step, from the first replica that sends its state. */
  async refresh(): Promise<void> {
    const { state, membership, log } = this.context;
    if (this.currentAt === state.step) return;
    // A suspect worker's replica is as good as a healthy one's: it is only slow.
    const holders = membership
      .all()
      .filter(
        (worker) =>
          (worker.state === 'healthy' || worker.state === 'suspect') && worker.holdsWeights(state.step),
      );
    for (const worker of holders) {
      try {
        const bytes = await this.request(worker, state.step);
        state.adopt(decodeCheckpoint(Buffer.from(bytes), `the replica of worker ${worker.label}`));
        this.currentAt = state.step;
        return;
      } catch (error) {
        log(`coordinator: could not read the replica of worker ${worker.label}: ${(error as Error).message}`);
      }
    }
    throw new CallosumError(ErrorCodes.NO_WORKERS, `no worker could send its replica of step ${state.step}`);
  }

  /** A `replica-state` message: the answer to this side's request, or discarded. */
  received(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'replica-state' }>): void {
    const pending = this.pending;
    if (pending?.worker !== worker || pending.version !== message.version) return;
    this.pending = undefined;
    pending.resolve(message.state);
  }

  /** A worker left: a request waiting for it fails at once. */
  private lost(worker: WorkerConnection): void {
    if (this.pending?.worker !== worker) return;
    const { reject } = this.pending;
    this.pending = undefined;
    reject(new CallosumError(ErrorCodes.NO_WORKERS, `worker ${worker.label} left`));
  }

  /**
   * Before a step: workers whose replica fell behind, and welcomed workers that listen for peers, get the
   * current state and, with it, work.
   */
  async admitWaiting(): Promise<void> {
    const { state, membership } = this.context;
    for (const worker of membership.healthy()) if (!worker.holdsWeights(state.step)) worker.fellBehind();
    if (this.waiting().length === 0) return;
    await this.refresh();
    this.sendState();
  }

  /** A worker started listening for peers: it joins now if this copy is current (before the first step). */
  listening(): void {
    if (this.currentAt === this.context.state.step) this.sendState();
  }

  private waiting(): WorkerConnection[] {
    return this.context.membership
      .all()
      .filter((worker) => worker.state === 'syncing' && worker.peerAddress !== undefined);
  }

  /** Sends this copy (which must be current) to every waiting worker, and makes them available. */
  private sendState(): void {
    const { state, membership, datasetSize } = this.context;
    if (this.encoded?.version !== state.step) {
      this.encoded = { version: state.step, bytes: encodeCheckpoint(state.checkpoint()) };
    }
    for (const worker of this.waiting()) {
      worker.send({ type: 'replica', version: state.step, datasetSize, state: this.encoded.bytes });
      worker.holdsReplica(state.step);
      worker.synced();
      membership.available(worker);
    }
  }

  private request(worker: WorkerConnection, version: number): Promise<Uint8Array> {
    const { clock, timeoutMs } = this.context;
    return new Promise<Uint8Array>((resolve, reject) => {
      const cancel = clock.after(timeoutMs, () => {
        if (this.pending?.worker !== worker) return;
        this.pending = undefined;
        reject(new CallosumError(ErrorCodes.COMPUTE_FAILED, `no replica state within ${timeoutMs} ms`));
      });
      this.pending = {
        worker,
        version,
        resolve: (bytes) => {
          cancel();
          resolve(bytes);
        },
        reject: (error) => {
          cancel();
          reject(error);
        },
      };
      worker.send({ type: 'state-request', version });
    });
  }
}
