/** Cancels a pending `Clock.after` callback; calling it again, or after the callback ran, does nothing. */
export type Cancel = () => void;

/**
 * Time as the dispatcher sees it: milliseconds on a monotonic clock, and callbacks after a delay.
 * Injected so that deadline tests drive time by hand instead of patching the global timers.
 */
export interface Clock {
  now(): number;
  after(ms: number, callback: () => void): Cancel;
}

/** setTimeout cannot wait longer than 2^31 - 1 ms; a longer wait would fire at once. */
const LONGEST_TIMEOUT_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => performance.now(),
  after: (ms, callback) => {
    let cancelled = false;
    const timer = setTimeout(
      () => afterPendingInput(() => cancelled || callback()),
      Math.min(LONGEST_TIMEOUT_MS, Math.max(0, ms)),
    );
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  },
};

/**
 * Runs `judgment` once what the sockets already hold has been read. After this process was stopped
 * (SIGSTOP) or starved for longer than a timeout, its timers fire before the event loop reads the
 * heartbeats and results that arrived meanwhile: judged at once, every worker would look silent or
 * late for the coordinator's own pause. An immediate runs after the next poll, which reads them.
 */
export function afterPendingInput(judgment: () => void): void {
  setImmediate(judgment);
}
