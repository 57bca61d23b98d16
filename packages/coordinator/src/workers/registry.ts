import type { WorkerConnection } from './connection.js';

/** Who wants to know when the set of workers that may be given work changes. */
export interface MembershipListener {
  /** A worker may be given work: just welcomed, or heard from again after being suspect. */
  available?(worker: WorkerConnection): void;
  /** A worker left or was removed; whatever it held must be redone. */
  lost?(worker: WorkerConnection): void;
}

/**
 * The set of connected workers, in join order, and the one place that announces who became available
 * for work and who is gone. Ranks are not stable: a worker's shard position in a step is its index
 * among the healthy workers at the start of that step.
 *
 * Listeners hear of a change once the call that made it has returned (a microtask later), never in
 * the middle of it: whoever removes a worker (say, the pool acting on the dispatcher's finding) is
 * never called back into by the dispatcher's listener within its own call.
 */
export class WorkerRegistry {
  private readonly workers = new Map<string, WorkerConnection>();
  private readonly listeners: MembershipListener[] = [];
  private nextId = 1;
  #peakHealthy = 0;

  newWorkerId(): string {
    return `w${this.nextId++}`;
  }

  subscribe(listener: MembershipListener): void {
    this.listeners.push(listener);
  }

  add(worker: WorkerConnection): void {
    this.workers.set(worker.id, worker);
  }

  /** Forgets a worker that is gone (closed or closing), and tells the listeners once. */
  remove(worker: WorkerConnection): void {
    worker.gone();
    if (!this.workers.delete(worker.id)) return;
    queueMicrotask(() => {
      for (const listener of this.listeners) listener.lost?.(worker);
    });
  }

  /** Call after a worker became healthy: keeps the peak count and tells the listeners. */
  available(worker: WorkerConnection): void {
    this.#peakHealthy = Math.max(this.#peakHealthy, this.healthy().length);
    queueMicrotask(() => {
      for (const listener of this.listeners) listener.available?.(worker);
    });
  }

  /** Most workers healthy at once during the run. */
  get peakHealthy(): number {
    return this.#peakHealthy;
  }

  /** Workers that may be given work, in join order. */
  healthy(): WorkerConnection[] {
    return [...this.workers.values()].filter((worker) => worker.state === 'healthy');
  }

  all(): WorkerConnection[] {
    return [...this.workers.values()];
  }
}
