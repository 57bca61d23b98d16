import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runWorker } from './worker.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('reconnecting', () => {
  it('gives up when giveUpAfterMs is up, not after a whole backoff delay more', async () => {
    // No jitter: the waits would be 2,500 then 5,000 ms, the second ending 4.5 s past the deadline.
    vi.spyOn(Math, 'random').mockReturnValue(0.999_999);
    const waits: number[] = [];
    const started = performance.now();
    const result = await runWorker({
      url: 'ws://127.0.0.1:1', // nothing listens on port 1: every attempt is refused at once
      backend: 'cpu',
      threads: 1,
      giveUpAfterMs: 3_000,
      reconnectDelayMs: 2_500,
      maxReconnectDelayMs: 10_000,
      log: (line) => {
        const wait = /retrying in (\d+) ms/.exec(line)?.[1];
        if (wait !== undefined) waits.push(Number(wait));
      },
    });
    const elapsed = performance.now() - started;
    expect(result.exitCode).toBe(1);
    expect(result.reason).toMatch(/no coordinator at ws:\/\/127\.0\.0\.1:1 for 3000 ms/);
    // The first wait is whole; the second is cut to what is left of the 3 s.
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBe(2_500);
    expect(waits[1]).toBeLessThan(500);
    expect((waits[0] as number) + (waits[1] as number)).toBeLessThanOrEqual(3_000);
    // Loading the backend comes first; even so, far from the 7.5 s the uncut waits would take.
    expect(elapsed).toBeGreaterThanOrEqual(3_000);
    expect(elapsed).toBeLessThan(6_500);
  }, 30_000);
});
