/**
 * Runs `work` with an AbortSignal that fires on SIGINT or SIGTERM, so the run can stop cleanly
 * (workers told, files closed) instead of dying mid-write. A second signal exits at once.
 */
export async function runUntilSignal<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(128 + (name === 'SIGINT' ? 2 : 15));
    controller.abort(`interrupted by ${name}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
