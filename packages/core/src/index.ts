// The public surface of @callosum/core. Nothing here imports a network library: transports live in
// @callosum/worker and @callosum/coordinator.

// Always have a backend, so building a model works before (or without) initBackend.
import './backends/cpu.js';
// Tensor methods (x.mean(), x.flatten()), as @tensorflow/tfjs has them.
import './tensor-methods.js';

export type { LayersModel } from '@tensorflow/tfjs-layers';
export {
  describeNativeKernels,
  keepFreedMemory,
  NATIVE_KERNELS_VARIABLE,
  type NativeKernelsStatus,
  nativeKernelsStatus,
} from './backends/native-kernels.js';
export {
  type BackendCandidate,
  type BackendName,
  BackendNames,
  type BackendPreference,
  registerBackendCandidate,
  requireBackendPreference,
} from './backends/registry.js';
export { type BackendChoice, initBackend } from './backends/select.js';
export { counted } from './counted.js';
export * from './data/index.js';
export { CallosumError, type ErrorCode, ErrorCodes, isCallosumError } from './errors.js';
export {
  type AtomicWriteOptions,
  processIdentity,
  processRuns,
  removeStaleTemporaryFiles,
  writeFileAtomically,
} from './io/atomic-file.js';
export { describeFileError, systemErrorCode, writeFailure } from './io/file-errors.js';
export { loadModel, MODEL_FILES, MODEL_JSON_FILE, saveModel } from './io/model-files.js';
export * from './models/index.js';
export * from './optim/index.js';
export { unknownOption } from './optim/validation.js';
export { didYouMean } from './options/did-you-mean.js';
export {
  integerOption,
  numberOption,
  parseOptions,
  positiveNumberOption,
  shownWithType,
} from './options/schema.js';
export {
  type ParameterEntry,
  type ParameterLayout,
  parameterLayout,
  readFlatWeights,
  type WeightRole,
  writeFlatWeights,
} from './params/layout.js';
export * from './protocol/index.js';
export * from './task/index.js';
export * as tf from './tf.js';
export type { BatchTotals, GradientResult } from './train/batch.js';
export {
  CHECKPOINT_FORMAT_VERSION,
  type Checkpoint,
  decodeCheckpoint,
  encodeCheckpoint,
  holdsCheckpoints,
  isCheckpointFileName,
  loadLatestCheckpoint,
  newestCheckpointStep,
  REPLICA_FORMAT_VERSION,
  writeCheckpoint,
} from './train/checkpoint.js';
export {
  BATCH_NORM_MODES,
  type BatchNormMode,
  DEFAULT_TRAINING_CONFIG,
  resolveTrainingConfig,
  type TrainingConfig,
  type TrainingOptions,
  type TrainingOverrides,
  trainingConfigSchema,
  trainingOptionsSchema,
} from './train/config.js';
export { type Divergence, trainingDiverged } from './train/divergence.js';
export {
  addTotals,
  EMPTY_TOTALS,
  type Evaluation,
  evaluateInChunks,
  evaluateSampleSet,
  evaluationOf,
} from './train/evaluate.js';
export { type EpochEvent, type StepEvent, stepEvent } from './train/events.js';
export {
  checkSynchronisable,
  computeGradients,
  computeShardAdjoint,
  computeShardMoments,
  evaluateBatch,
} from './train/gradients.js';
export {
  activationBytesPerSample,
  largestFittingSamples,
  WASM_MEMORY_BYTES,
} from './train/memory-estimate.js';
export {
  computeTreeGradients,
  type KnownNode,
  microBatchCount,
  nodeSamples,
  TreeGradientSum,
  type TreeNode,
  type TreeShard,
  TreeSummation,
  treeNodesCovering,
  treeRoot,
  treeShards,
} from './train/micro-batch-tree.js';
export {
  assertFiniteShard,
  OrderedGradientSum,
  type ReducedStep,
  reduceShardGradients,
} from './train/reduce.js';
export {
  type ComputeShard,
  type Reduction,
  type ReductionSettings,
  reductionFor,
  type StepPlan,
} from './train/reduction.js';
export {
  RingExchange,
  type RingPlan,
  type RingShard,
  ringChunk,
  type ScatterRows,
} from './train/ring-exchange.js';
export { stepLabel } from './train/step-label.js';
export {
  type BatchNormPass,
  batchNormChannels,
  batchNormPositions,
  combineMoments,
  type ShardMoments,
  type SyncedStatistics,
  statisticsLength,
  sumAdjoints,
} from './train/sync-batch-norm.js';
export { probeBatch } from './train/task-probe.js';
export {
  type TrainLocalOptions,
  type TrainLocalResult,
  trainLocal,
} from './train/train-local.js';
export { allTrainable, TrainingState } from './train/training-state.js';
