import {
  BackendNames,
  CallosumError,
  counted,
  ErrorCodes,
  largestFittingSamples,
  type Task,
  type TrainingConfig,
  WASM_MEMORY_BYTES,
} from '@callosum/core';

/**
 * Refuses, before anything starts, a batch whose gradient cannot fit the workers' memory. Only wasm has
 * a hard limit (4 GiB per thread: each compute thread has its own wasm memory): past it a worker fails
 * with "memory access out of bounds" at the first step. Each thread computes its piece of a shard
 * (about batch / workers / threads samples) in one piece, or one micro-batch at a time.
 */
export function assertBatchFits(
  task: Task,
  config: TrainingConfig,
  { workers, threads }: { workers: number; threads: number },
  backend: string,
): void {
  if (backend !== BackendNames.WASM && backend !== BackendNames.AUTO) return;
  const atOnce = config.microBatchSize ?? Math.ceil(Math.ceil(config.batchSize / workers) / threads);
  const model = task.buildModel(config.seed);
  const fitting = largestFittingSamples(model, WASM_MEMORY_BYTES);
  model.dispose();
  if (atOnce <= fitting) return;
  const advice =
    config.microBatchSize === undefined
      ? `the largest batch that fits with ${counted(workers, 'worker')} and ${counted(threads, 'thread')} each is ${fitting * workers * threads} (or set --micro-batch-size)`
      : 'use a smaller --micro-batch-size';
  throw new CallosumError(
    ErrorCodes.INVALID_ARGUMENT,
    `--batch-size ${config.batchSize} does not fit the wasm backend's 4 GiB: each worker thread would compute ` +
      `${atOnce} samples at once, and about ${fitting} fit (${task.name}); ${advice}`,
  );
}
