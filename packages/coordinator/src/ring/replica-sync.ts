import {
  CallosumError,
  decodeCheckpoint,
  ErrorCodes,
  encodeCheckpoint,
  REPLICA_FORMAT_VERSION,
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
  /**
   * How long the replica asked first has to answer before the next one is asked as well: a worker that
   * stopped answering (SIGSTOP, a dead link not yet noticed) must not hold a checkpoint up for timeoutMs.
   */
  readonly hedgeMs: number;
  /**
   * The last worker holding the replicas' state left while this copy was behind it: the steps since
   * this copy was last brought up to date exist nowhere, and the run cannot go on (a resume can).
   */
  readonly stateLost: (error: CallosumError) => void;
  readonly log: (line: string) => void;
}

/** State requests under way at once: the one asked first, and one hedge. */
const MAX_STATE_REQUESTS = 2;

interface StateRequest {
  readonly version: number;
  readonly resolve: (state: Uint8Array) => void;
  readonly reject: (error: Error) => void;
  /** Stops its deadline; its promise is left unsettled (nothing waits for it any more). */
  readonly cancel: () => void;
}

/**
 * The coordinator's copy of a ring run's state. The replicas apply every step; this copy only counts
 * them, and is brought up to date from a replica when something needs the weights (a checkpoint, the
 * saved model, a worker that joins). Joining workers get the state, then work.
 */
export class ReplicaSync {
  /** The step this copy's weights and optimizer state are at. */
  private currentAt: number;
  /** The state requests under way, by the worker asked. */
  private readonly pending = new Map<WorkerConnection, StateRequest>();
  /** The refresh under way, which a second caller waits for rather than start its own. */
  private refreshing: Promise<void> | undefined;
  /** Why the run cannot go on: the last replica left while this copy was behind it. */
  private stateGone: CallosumError | undefined;
  private encoded: { version: number; bytes: Uint8Array } | undefined;

  constructor(private readonly context: ReplicaSyncContext) {
    this.currentAt = context.state.step;
    context.membership.subscribe({ lost: (worker) => this.lost(worker) });
  }

  /** Counts a step the replicas applied; returns its learning rate. */
  advance(): number {
    return this.context.state.advanceWithoutApplying();
  }

  /**
   * Brings this copy up to the replicas' step, from the first replica that sends a usable state. The
   * worker heard from last is asked first; hedgeMs without a usable answer, the next is asked too.
   */
  refresh(): Promise<void> {
    if (this.currentAt === this.context.state.step) return Promise.resolve();
    this.refreshing ??= this.refreshFromReplicas().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async refreshFromReplicas(): Promise<void> {
    const { state } = this.context;
    const holders = this.holders(state.step).sort((a, b) => b.lastHeardAt - a.lastHeardAt);
    await this.adoptFirstUsable(holders, state.step);
    this.currentAt = state.step;
  }

  /**
   * Asks `holders` in turn until one's state is adopted; rejects once all failed. The next is asked when
   * one fails, or hedgeMs after the last was asked while only one request is under way: a replica slow
   * to send a large state then costs one more transfer at most, never one per holder.
   */
  private adoptFirstUsable(holders: readonly WorkerConnection[], version: number): Promise<void> {
    const { state, clock, hedgeMs, log } = this.context;
    return new Promise<void>((resolve, reject) => {
      const queue = [...holders];
      let settled = false;
      let cancelHedge = () => {};
      const giveUp = (worker: WorkerConnection, reason: string) => {
        if (settled) return;
        log(`coordinator: could not read the replica of worker ${worker.label}: ${reason}`);
        askNext();
      };
      const askNext = () => {
        cancelHedge();
        const worker = queue.shift();
        if (worker === undefined) {
          if (this.pending.size > 0) return; // The others asked may still answer.
          settled = true;
          reject(
            new CallosumError(ErrorCodes.NO_WORKERS, `no worker could send its replica of step ${version}`),
          );
          return;
        }
        cancelHedge = clock.after(hedgeMs, () => {
          if (this.pending.size < MAX_STATE_REQUESTS) askNext();
        });
        this.request(worker, version).then(
          (bytes) => {
            if (settled) return;
            try {
              state.adopt(decodeCheckpoint(Buffer.from(bytes), `the replica of worker ${worker.label}`));
            } catch (error) {
              giveUp(worker, (error as Error).message);
              return;
            }
            settled = true;
            cancelHedge();
            this.forgetRequests();
            resolve();
          },
          (error: Error) => giveUp(worker, error.message),
        );
      };
      askNext();
    });
  }

  /** A `replica-state` message: the answer to this side's request, or discarded. */
  received(worker: WorkerConnection, message: Extract<WorkerMessage, { type: 'replica-state' }>): void {
    const pending = this.pending.get(worker);
    if (pending?.version !== message.version) return;
    this.pending.delete(worker);
    pending.resolve(message.state);
  }

  /** A worker left: a request waiting for it fails at once; with it the last replica may be gone. */
  private lost(worker: WorkerConnection): void {
    const pending = this.pending.get(worker);
    if (pending !== undefined) {
      this.pending.delete(worker);
      pending.reject(new CallosumError(ErrorCodes.NO_WORKERS, `worker ${worker.label} left`));
    }
    const { state } = this.context;
    if (this.stateGone !== undefined || this.currentAt === state.step) return;
    // Replicas that applied the step being confirmed hold the next one until the step is counted.
    if (this.holders(state.step).length + this.holders(state.step + 1).length > 0) return;
    // Workers that join now could only be given this copy's state, steps behind: none is waited for,
    // in the round under way (stateLost) or before the next step (admitWaiting).
    this.stateGone = new CallosumError(
      ErrorCodes.NO_WORKERS,
      `every worker holding the run's state after step ${state.step} has left (in a ring run the workers' replicas are its only copy between checkpoints), so the run cannot go on here; a resume continues from its newest checkpoint`,
    );
    this.context.stateLost(this.stateGone);
  }

  /** The workers whose replica is at `step`; a suspect worker's is as good as a healthy one's. */
  private holders(step: number): WorkerConnection[] {
    return this.context.membership
      .all()
      .filter(
        (worker) => (worker.state === 'healthy' || worker.state === 'suspect') && worker.holdsWeights(step),
      );
  }

  /** Another replica answered: the requests still under way are of no use, and their answers discarded. */
  private forgetRequests(): void {
    for (const { cancel } of this.pending.values()) cancel();
    this.pending.clear();
  }

  /**
   * Before a step: workers whose replica fell behind, and welcomed workers that listen for peers, get the
   * current state and, with it, work.
   */
  async admitWaiting(): Promise<void> {
    if (this.stateGone !== undefined) throw this.stateGone;
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
      this.encoded = {
        version: state.step,
        bytes: encodeCheckpoint(state.checkpoint(), REPLICA_FORMAT_VERSION),
      };
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
        if (this.pending.get(worker) !== request) return;
        this.pending.delete(worker);
        reject(new CallosumError(ErrorCodes.COMPUTE_FAILED, `no replica state within ${timeoutMs} ms`));
      });
      const request: StateRequest = {
        version,
        resolve: (bytes) => {
          cancel();
          resolve(bytes);
        },
        reject: (error) => {
          cancel();
          reject(error);
        },
        cancel,
      };
      this.pending.set(worker, request);
      worker.send({ type: 'state-request', version });
    });
  }
}
