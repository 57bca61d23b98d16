import { CallosumError, ErrorCodes } from '@callosum/core';
import { describe, expect, it } from 'vitest';
import type { WorkerConnection } from '../workers/connection.js';
import { WorkerRegistry } from '../workers/registry.js';
import { StartQuorum } from './start-quorum.js';

/** The quorum only counts healthy workers: stand-ins with an id and a state, in a real registry. */
function healthyWorker(id: string): WorkerConnection {
  return { id, state: 'healthy' } as unknown as WorkerConnection;
}

function membershipOf(healthy: string[]): WorkerRegistry {
  const registry = new WorkerRegistry();
  for (const id of healthy) registry.add(healthyWorker(id));
  return registry;
}

describe('StartQuorum', () => {
  it('fails with NO_WORKERS, naming the counts, when too few workers join within the start timeout', async () => {
    const quorum = new StartQuorum(membershipOf(['w1']), { minWorkers: 2, startTimeoutMs: 50 });
    await expect(quorum.reached(() => undefined)).rejects.toMatchObject({
      code: ErrorCodes.NO_WORKERS,
      message: 'only 1 of 2 workers joined within 50 ms',
    });
  });

  it('resolves as soon as the registry announces the worker that completes the quorum', async () => {
    const membership = membershipOf([]);
    const quorum = new StartQuorum(membership, { minWorkers: 1, startTimeoutMs: 60_000 });
    const started = Date.now();
    const reached = quorum.reached(() => undefined);
    const worker = healthyWorker('w1');
    membership.add(worker);
    membership.available(worker);
    await reached;
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('rejects with the stop reason when a stop wakes it', async () => {
    const quorum = new StartQuorum(membershipOf([]), { minWorkers: 1, startTimeoutMs: 60_000 });
    let stop: CallosumError | undefined;
    const reached = quorum.reached(() => stop);
    stop = new CallosumError(ErrorCodes.COORDINATOR_STOPPING, 'signal');
    quorum.wake();
    await expect(reached).rejects.toBe(stop);
  });
});
