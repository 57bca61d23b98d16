export { defaultThreads, usableCores } from './cpu-budget.js';
export { GradientService } from './gradient-service.js';
export {
  isWebSocketUrl,
  MAX_WORKER_THREADS,
  resolveWorkerOptions,
  WORKER_DEFAULTS,
  type WorkerOptions,
  type WorkerSettings,
  workerNameProblem,
  workerOptionsSchema,
} from './options.js';
export { runWorker, type WorkerExit } from './worker.js';
