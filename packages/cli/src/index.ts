export {
  type FitCallback,
  type FitOptions,
  type FitResult,
  type FitRun,
  fit,
  type History,
  type Logs,
} from './fit.js';
export { earlyStopping, saveBestModel } from './fit-callbacks.js';
export { tuneHeapForTraining } from './heap-tuning.js';
export { type LocalTrainingOptions, trainWithLocalWorkers } from './local-training.js';
export { createProgram } from './program.js';
