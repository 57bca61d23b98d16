export { tuneHeapForTraining } from './heap-tuning.js';
export { type LocalTrainingOptions, trainWithLocalWorkers } from './local-training.js';
export { createProgram } from './program.js';
