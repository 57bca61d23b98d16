import type { WorkerConnection } from './connection.js';

/**
 * The set of connected workers, in join order. Ranks are not stable: a worker's shard position in a
 * step is its index among the healthy workers at the start of that step.
 */
export class WorkerRegistry {
  private readonly workers = new Map<string, WorkerConnection>();
  private nextId = 1;
  #peakHealthy = 0;

  newWorkerId(): string {
    return `w${this.nextId++}`;
  }

  add(worker: WorkerConnection): void {
    this.workers.set(worker.id, worker);
  }

  /** Forgets a worker that is gone (closed or closing). */
  remove(worker: WorkerConnection): void {
    worker.gone();
    this.workers.delete(worker.id);
  }

  /** Call after a worker became healthy, to keep the peak count. */
  countHealthy(): void {
    this.#peakHealthy = Math.max(this.#peakHealthy, this.healthy().length);
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
