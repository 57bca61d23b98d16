import type { LayersModel } from '@tensorflow/tfjs-layers';
import { type ImageBatch, sliceImageBatch } from '../data/batch.js';
import { gatherBatch, type ImageSet } from '../data/mnist.js';
import type { BatchTotals } from './batch.js';
import { evaluateBatch } from './gradients.js';

/** Adds batch totals; evaluation and training both report sums and divide once at the end. */
export function addTotals(a: BatchTotals, b: BatchTotals): BatchTotals {
  return { lossSum: a.lossSum + b.lossSum, correct: a.correct + b.correct, count: a.count + b.count };
}

export const EMPTY_TOTALS: BatchTotals = { lossSum: 0, correct: 0, count: 0 };

/**
 * Samples evaluated in one forward pass. A whole evaluation shard at once (thousands of images) is
 * three to five times slower on wasm: its activations outgrow the caches (docs/benchmarks.md).
 */
export const EVALUATION_CHUNK_SAMPLES = 512;

/** Loss and accuracy totals of `batch`, evaluated EVALUATION_CHUNK_SAMPLES at a time. */
export function evaluateInChunks(model: LayersModel, batch: ImageBatch): BatchTotals {
  let totals = EMPTY_TOTALS;
  for (let start = 0; start < batch.count; start += EVALUATION_CHUNK_SAMPLES) {
    const end = Math.min(batch.count, start + EVALUATION_CHUNK_SAMPLES);
    totals = addTotals(totals, evaluateBatch(model, sliceImageBatch(batch, start, end)));
  }
  return totals;
}

/** Loss and accuracy over every sample of `set`, each counted exactly once. */
export function evaluateImageSet(model: LayersModel, set: ImageSet): BatchTotals {
  const everySample = Array.from({ length: set.count }, (_, i) => i);
  return evaluateInChunks(model, gatherBatch(set, everySample));
}
