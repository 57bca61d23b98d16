import { runWorker, type WorkerExit, type WorkerOptions } from '@callosum/worker';

/**
 * A worker in this process, as the coordinator's tests run one: silent, on the cpu backend and one compute
 * thread (each further thread of a cpu worker loads tfjs again; threads have their own tests in
 * @callosum/worker). `options` adds to or overrides that.
 */
export function inlineWorker(url: string, options: Partial<WorkerOptions> = {}): Promise<WorkerExit> {
  return runWorker({ url, backend: 'cpu', threads: 1, log: () => {}, ...options });
}
