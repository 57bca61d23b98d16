export { GradientService } from './gradient-service.js';
export {
  isWebSocketUrl,
  resolveWorkerOptions,
  WORKER_DEFAULTS,
  type WorkerOptions,
  type WorkerSettings,
  workerOptionsSchema,
} from './options.js';
export { runWorker, type WorkerExit } from './worker.js';
