import { CallosumError, ErrorCodes } from '@callosum/core';
import type { WorkerRegistry } from '../workers/registry.js';

export interface StartQuorumOptions {
  readonly minWorkers: number;
  readonly startTimeoutMs: number;
}

/** The start of a run: training begins once `minWorkers` are healthy, or fails after the start timeout. */
export class StartQuorum {
  private wakeUp: (() => void) | undefined;

  constructor(
    private readonly membership: WorkerRegistry,
    private readonly options: StartQuorumOptions,
  ) {
    membership.subscribe({ available: () => this.wake() });
  }

  /** Resolves once enough workers are healthy; rejects on timeout or with the stop reason. */
  async reached(stopRequested: () => CallosumError | undefined): Promise<void> {
    const { minWorkers, startTimeoutMs } = this.options;
    const deadline = Date.now() + startTimeoutMs;
    while (this.membership.healthy().length < minWorkers) {
      const stop = stopRequested();
      if (stop) throw stop;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new CallosumError(
          ErrorCodes.NO_WORKERS,
          `only ${this.membership.healthy().length} of ${minWorkers} workers joined within ${startTimeoutMs} ms`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.wakeUp = undefined;
  }

  /** Something changed (a worker became healthy, a stop was requested): look again. */
  wake(): void {
    this.wakeUp?.();
  }
}
