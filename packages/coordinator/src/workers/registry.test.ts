import { describe, expect, it } from 'vitest';
import type { WorkerConnection } from './connection.js';
import { WorkerRegistry } from './registry.js';

/** Stand-ins with the two members the registry reads and writes: an id and a state. */
function worker(id: string): WorkerConnection {
  const stub = {
    id,
    state: 'healthy',
    gone() {
      stub.state = 'gone';
    },
  };
  return stub as unknown as WorkerConnection;
}

describe('WorkerRegistry', () => {
  it('tells its listeners of an available or lost worker once the call has returned, and of a loss once', async () => {
    const registry = new WorkerRegistry();
    const heard: string[] = [];
    registry.subscribe({
      available: (w) => heard.push(`available ${w.id}`),
      lost: (w) => heard.push(`lost ${w.id}`),
    });
    const [w1, w2] = [worker('w1'), worker('w2')];
    registry.add(w1);
    registry.add(w2);
    registry.available(w1);
    registry.available(w2);
    registry.remove(w1);
    expect(heard).toEqual([]);
    expect(w1.state).toBe('gone');
    expect(registry.healthy()).toEqual([w2]);
    await Promise.resolve();
    expect(heard).toEqual(['available w1', 'available w2', 'lost w1']);
    // Removing it again, or removing a worker it never had, tells nobody.
    registry.remove(w1);
    registry.remove(worker('w9'));
    await Promise.resolve();
    expect(heard).toHaveLength(3);
    expect(registry.peakHealthy).toBe(2);
  });
});
