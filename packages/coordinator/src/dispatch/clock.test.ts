import { describe, expect, it } from 'vitest';
import { systemClock } from './clock.js';

/** Keeps this process from running anything else for `ms`, as a stop (SIGSTOP) or starvation would. */
function blockFor(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy: no timer, no I/O runs meanwhile
  }
}

// The real timers of the dispatcher's deadlines, on a real event loop.
describe('systemClock.after', () => {
  it('calls back on time when the process runs', async () => {
    const started = performance.now();
    // A plain timer beside it tells whether this process did run: starved (other tests share the
    // cores), the clock waits the time it missed again, on purpose, and only the lower bound holds.
    const plainAt = new Promise<number>((resolve) => setTimeout(() => resolve(performance.now()), 50));
    const calledAt = await new Promise<number>((resolve) =>
      systemClock.after(50, () => resolve(performance.now())),
    );
    expect(calledAt - started).toBeGreaterThanOrEqual(49);
    if ((await plainAt) - started < 150) expect(calledAt - started).toBeLessThan(400);
  });

  it('does not count time the process could not run: a wait that fell in a pause is extended by it', async () => {
    const started = performance.now();
    const called = new Promise<number>((resolve) => systemClock.after(50, () => resolve(performance.now())));
    blockFor(600); // the timer is due 550 ms before this returns
    const calledAt = await called;
    // Due at 50 ms, found at about 600 ms: it waits the 550 ms it missed again (not 50 ms after the pause).
    expect(calledAt - started).toBeGreaterThanOrEqual(1_000);
  });

  it('never calls back once cancelled, also during an extension', async () => {
    let called = false;
    const cancel = systemClock.after(20, () => {
      called = true;
    });
    blockFor(300);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the late timer has fired and re-armed
    cancel();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(called).toBe(false);
  });
});
