export {
  type DefinedTask,
  defineTask,
  isDefinedTask,
  type TaskArray,
  type TaskDataSplits,
  type TaskDefinition,
  type TaskOptimizer,
  type TaskSplit,
} from './define-task.js';
export {
  type Fingerprint,
  fingerprintDifference,
  fingerprintDigest,
  fingerprintOfTask,
  taskFingerprint,
} from './fingerprint.js';
export { loadTaskModule, taskNameOf } from './load-task.js';
export { LOSS_NAMES, type LossName, type SampleFunction } from './losses.js';
export { imageSamples, mnistTask } from './mnist-task.js';
export { sampleSet, taskFromDefinition } from './module-task.js';
export { type LossSpec, metricNamesOf, Objective } from './objective.js';
export {
  loadTaskForTraining,
  prepareTask,
  requireAugmentable,
  requireSameTask,
  requireShiftFits,
  requireTrainedTask,
  runTask,
  taskTrainingConfig,
} from './prepare-task.js';
export {
  evaluationSetOf,
  inputSampleShape,
  instantiateTask,
  type Task,
  type TaskData,
  type TaskModel,
} from './task.js';
export { checkTaskData } from './task-data.js';
