import type { WorkerConnection } from './worker-connection.js';

/**
 * The set of connected workers, in join order. Ranks are not stable: a worker's shard position in a
 * step is its index among the healthy workers at the start of that step.
 */
export class Membership {
  private readonly workers = new Map<string, WorkerConnection>();
  private nextId = 1;
  /** Most workers healthy at once during the run. */
  peakHealthy = 0;

  newWorkerId(): string {
    return `w${this.nextId++}`;
  }

  add(worker: WorkerConnection): void {
    this.workers.set(worker.id, worker);
  }

  remove(worker: WorkerConnection): void {
    worker.state = 'gone';
    this.workers.delete(worker.id);
  }

  markHealthy(worker: WorkerConnection): void {
    worker.state = 'healthy';
    this.peakHealthy = Math.max(this.peakHealthy, this.healthy().length);
  }

  /** Workers that may be given work, in join order. */
  healthy(): WorkerConnection[] {
    return [...this.workers.values()].filter((worker) => worker.state === 'healthy');
  }

  all(): WorkerConnection[] {
    return [...this.workers.values()];
  }

  get size(): number {
    return this.workers.size;
  }
}
