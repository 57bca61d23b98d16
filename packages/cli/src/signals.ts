/** How long a stop may take (checkpoint, workers told, files closed) before a stuck one is cut short. */
const FORCE_EXIT_AFTER_MS = 8_000;

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
/** SIGHUP too: a closed terminal or a dropped SSH session stops the run as SIGTERM does (as torchrun). */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs `work` with an AbortSignal that fires on the first SIGINT, SIGTERM or SIGHUP, so the run stops
 * cleanly: it checkpoints, tells its workers, closes its files. A second signal (Ctrl-C pressed twice,
 * `timeout`) is only acknowledged: exiting then would cut the checkpoint write short. A third signal,
 * or a stop that takes longer than FORCE_EXIT_AFTER_MS, exits at once; checkpoints are written to a
 * temporary file and renamed, so even then the previous checkpoint is intact. Output that can no longer
 * be written (a closed pipe such as `| head`, a closed terminal) stops the run as a first signal does,
 * instead of killing the process with the write's error.
 */
export async function runUntilSignal<T>(
  work: (signal: AbortSignal) => Promise<T>,
  notify: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<T> {
  const controller = new AbortController();
  let received = 0;
  let forceTimer: NodeJS.Timeout | undefined;
  const forceExit = (name: NodeJS.Signals, why: string) => {
    notify(`callosum: ${why}; exiting without waiting (the previous checkpoint is intact)`);
    process.exit(128 + (SIGNAL_NUMBERS[name] ?? 15));
  };
  const onSignal = (name: NodeJS.Signals) => {
    received += 1;
    if (received === 1) {
      notify(`callosum: ${name}: stopping after a checkpoint`);
      controller.abort(`interrupted by ${name}`);
      forceTimer = setTimeout(
        () => forceExit(name, `the stop took longer than ${FORCE_EXIT_AFTER_MS / 1000} s`),
        FORCE_EXIT_AFTER_MS,
      );
    } else if (received === 2) {
      notify('callosum: saving checkpoint, please wait (a third signal exits at once)');
    } else {
      forceExit(name, `a third ${name}`);
    }
  };
  // Only the first failed write counts: every later line fails too, and must not count as more signals.
  const onOutputClosed = (error: NodeJS.ErrnoException) => {
    if (received > 0) return;
    received = 1;
    controller.abort(`its output could not be written (${error.code ?? error.message})`);
    forceTimer = setTimeout(
      () => forceExit('SIGTERM', `the stop took longer than ${FORCE_EXIT_AFTER_MS / 1000} s`),
      FORCE_EXIT_AFTER_MS,
    );
  };
  ignoreOutputErrors();
  for (const name of STOP_SIGNALS) process.on(name, onSignal);
  process.stdout.on('error', onOutputClosed);
  process.stderr.on('error', onOutputClosed);
  try {
    return await work(controller.signal);
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
