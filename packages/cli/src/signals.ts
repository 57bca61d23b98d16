/** How long a stop may take (checkpoint, workers told, files closed) before a stuck one is cut short. */
const FORCE_EXIT_AFTER_MS = 8_000;

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
/** SIGHUP too: a closed terminal or a dropped SSH session stops the run as SIGTERM does (as torchrun). */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs `work` with an AbortSignal that fires on the first SIGINT, SIGTERM or SIGHUP, so the run stops
 * cleanly: it checkpoints, tells its workers, closes its files. A second signal (Ctrl-C pressed twice,
 * `timeout`) is only acknowledged: exiting then would cut the checkpoint write short. A third signal,
 * or a stop that takes longer than FORCE_EXIT_AFTER_MS, exits at once; checkpoints are written to a
 * temporary file and renamed, so even then the checkpoints already written are intact. Output that can no longer
 * be written (stderr: a closed terminal, `2>&1 | head`) stops the run as a first signal does, instead
 * of killing the process with the write's error.
 *
 * `work` calls `started` once the run has started. A stop asked for before then gives the start up (a
 * task's data that takes long to load is not waited for) or, in the parts of a start that cannot be
 * given up, stops the run before its first step; either way its directory is left as it was found. The
 * FORCE_EXIT_AFTER_MS limit counts from the start's end, so that it does not cut a start short.
 */
export async function runUntilSignal<T>(
  work: (signal: AbortSignal, started: () => void) => Promise<T>,
  notify: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<T> {
  const controller = new AbortController();
  let signals = 0;
  let running = false;
  /** The exit code of a forced exit, once a stop is asked for. */
  let stopping: number | undefined;
  let forceTimer: NodeJS.Timeout | undefined;
  const forceExit = (exitCode: number, why: string) => {
    notify(
      `callosum: ${why}; exiting without waiting (checkpoints already written are intact; a resume continues from the newest)`,
    );
    process.exit(exitCode);
  };
  const armForceExit = (exitCode: number) => {
    forceTimer = setTimeout(
      () => forceExit(exitCode, `the stop took longer than ${FORCE_EXIT_AFTER_MS / 1000} s`),
      FORCE_EXIT_AFTER_MS,
    );
  };
  const beginStop = (reason: string, exitCode: number) => {
    if (stopping !== undefined) return;
    stopping = exitCode;
    controller.abort(reason);
    if (running) armForceExit(exitCode);
  };
  const onSignal = (name: NodeJS.Signals) => {
    signals += 1;
    const exitCode = 128 + (SIGNAL_NUMBERS[name] ?? 15);
    if (signals === 1) {
      notify(
        running
          ? `callosum: ${name}: stopping after a checkpoint`
          : `callosum: ${name}: giving up the start (nothing is trained yet; a third signal exits at once)`,
      );
      beginStop(`interrupted by ${name}`, exitCode);
    } else if (signals === 2) {
      notify(
        running
          ? 'callosum: saving checkpoint, please wait (a third signal exits at once)'
          : 'callosum: giving up the start, please wait (a third signal exits at once)',
      );
    } else {
      forceExit(exitCode, `a third ${name}`);
    }
  };
  // Not a signal: it counts towards none of the three (every later line fails too).
  const onOutputClosed = (error: NodeJS.ErrnoException) =>
    beginStop(`its output could not be written (${error.code ?? error.message})`, 1);
  const started = () => {
    running = true;
    if (stopping !== undefined) armForceExit(stopping);
  };
  ignoreOutputErrors();
  for (const name of STOP_SIGNALS) process.on(name, onSignal);
  process.stdout.on('error', onOutputClosed);
  process.stderr.on('error', onOutputClosed);
  try {
    return await work(controller.signal, started);
  } finally {
    clearTimeout(forceTimer);
    for (const name of STOP_SIGNALS) process.off(name, onSignal);
    process.stdout.off('error', onOutputClosed);
    process.stderr.off('error', onOutputClosed);
  }
}

let outputErrorsIgnored = false;

/**
 * A write to a closed stdout or stderr fails with an 'error' event, which kills a process that does not
 * listen for it: after the run, the summary and the resume command are written as usual, and lost.
 */
function ignoreOutputErrors(): void {
  if (outputErrorsIgnored) return;
  outputErrorsIgnored = true;
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
}

/**
 * Calls `act` with the reason once `signal` is aborted: at once if it already is (a signal that came
 * while the run was starting, before anything listened), else when it fires. Returns what undoes that.
 */
export function whenAborted(signal: AbortSignal | undefined, act: (reason: string) => void): () => void {
  if (signal === undefined) return () => {};
  const onAbort = () => act(String(signal.reason ?? 'aborted'));
  if (signal.aborted) {
    onAbort();
    return () => {};
  }
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
