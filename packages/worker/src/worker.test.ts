import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { runWorker } from './worker.js';

describe('reconnecting', () => {
  it('gives up when giveUpAfterMs is up, not after a whole backoff delay more', async () => {
    const lost: number[] = [];
    const result = await runWorker({
      url: 'ws://127.0.0.1:1', // nothing listens on port 1: every attempt is refused at once
      backend: 'cpu',
      threads: 1,
      giveUpAfterMs: 3_000,
      // The second wait (2.5–5 s, jittered) would end 0.75–4.5 s past the deadline if it were not cut.
      reconnectDelayMs: 2_500,
      maxReconnectDelayMs: 10_000,
      log: (line) => {
        if (line.includes('connection lost')) lost.push(performance.now());
      },
    });
    const ended = performance.now();
    expect(result.exitCode).toBe(1);
    expect(result.reason).toMatch(/no coordinator at ws:\/\/127\.0\.0\.1:1 for 3000 ms/);
    // The first refusal comes a few milliseconds after the worker starts counting; the last attempt is
    // made at the deadline and refused as quickly.
    const elapsed = ended - (lost[0] as number);
    expect(elapsed).toBeGreaterThanOrEqual(2_900);
    expect(elapsed).toBeLessThan(3_600);
  }, 30_000);
});
