import {
  BackendNames,
  buildModel,
  CallosumError,
  ErrorCodes,
  largestFittingSamples,
  type TrainingConfig,
  WASM_MEMORY_BYTES,
} from '@callosum/core';

/**
 * Refuses, before anything starts, a batch whose gradient cannot fit the workers' memory. Only wasm has
 * a hard limit (4 GiB): past it a worker fails with "memory access out of bounds" at the first step.
 * A worker computes its shard (about batch / workers samples) in one piece, or one micro-batch at a time.
 */
export function assertBatchFits(config: TrainingConfig, workers: number, backend: string): void {
  if (backend !== BackendNames.WASM && backend !== BackendNames.AUTO) return;
  const atOnce = config.microBatchSize ?? Math.ceil(config.batchSize / workers);
  const model = buildModel(config.model, { seed: config.seed });
  const fitting = largestFittingSamples(model, WASM_MEMORY_BYTES);
  model.dispose();
  if (atOnce <= fitting) return;
  const advice =
    config.microBatchSize === undefined
      ? `the largest batch that fits with ${workers} workers is ${fitting * workers} (or set --micro-batch-size)`
      : 'use a smaller --micro-batch-size';
  throw new CallosumError(
    ErrorCodes.INVALID_ARGUMENT,
    `--batch-size ${config.batchSize} does not fit the wasm backend's 4 GiB: each worker would compute ` +
      `${atOnce} samples at once, and about ${fitting} fit (${config.model.name} model); ${advice}`,
  );
}
