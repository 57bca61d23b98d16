export { GradientService } from './gradient-service.js';
export { runWorker, type WorkerExit, type WorkerOptions } from './worker.js';
