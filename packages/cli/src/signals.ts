/** How long a stop may take (checkpoint, workers told, files closed) before a stuck one is cut short. */
const FORCE_EXIT_AFTER_MS = 8_000;

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15 };

/**
 * Runs `work` with an AbortSignal that fires on the first SIGINT or SIGTERM, so the run stops cleanly:
 * it checkpoints, tells its workers, closes its files. A second signal (Ctrl-C pressed twice, `timeout`)
 * is only acknowledged: exiting then would cut the checkpoint write short. A third signal, or a stop
 * that takes longer than FORCE_EXIT_AFTER_MS, exits at once; checkpoints are written to a temporary
 * file and renamed, so even then the previous checkpoint is intact.
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
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(forceTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
