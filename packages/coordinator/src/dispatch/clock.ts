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

/**
 * A timer that fires this much later than it was due was not being run: the process was stopped or
 * starved, and could not have heard anything in that time.
 */
const PAUSED_AFTER_MS = 100;
/** How many pauses one wait is extended by at most: a process starved without end still judges. */
const MAX_EXTENSIONS = 3;

export const systemClock: Clock = {
  now: () => performance.now(),
  after: (ms, callback) => {
    let cancelled = false;
    let timer: NodeJS.Timeout;
    // The time this process was paused does not count towards the wait: a worker sent a request
    // just before the coordinator was stopped could not be heard answering it while it was.
    const wait = (delayMs: number, extensions: number) => {
      const due = performance.now() + delayMs;
      timer = setTimeout(
        () => {
          const pausedMs = performance.now() - due;
          if (pausedMs > PAUSED_AFTER_MS && extensions < MAX_EXTENSIONS) wait(pausedMs, extensions + 1);
          else afterPendingInput(() => cancelled || callback());
        },
        Math.min(LONGEST_TIMEOUT_MS, Math.max(0, delayMs)),
      );
    };
    wait(ms, 0);
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
