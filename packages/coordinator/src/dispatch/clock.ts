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
    const timer = setTimeout(callback, Math.min(LONGEST_TIMEOUT_MS, Math.max(0, ms)));
    return () => clearTimeout(timer);
  },
};
