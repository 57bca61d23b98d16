import type { LayersModel } from '@tensorflow/tfjs-layers';
import { gatherBatch, type ImageSet } from '../data/mnist.js';
import type { BatchTotals } from './batch.js';
import { evaluateBatch } from './gradients.js';

/** Adds batch totals; evaluation and training both report sums and divide once at the end. */
export function addTotals(a: BatchTotals, b: BatchTotals): BatchTotals {
  return { lossSum: a.lossSum + b.lossSum, correct: a.correct + b.correct, count: a.count + b.count };
}

export const EMPTY_TOTALS: BatchTotals = { lossSum: 0, correct: 0, count: 0 };

/** Loss and accuracy over every sample of `set`, each counted exactly once, in chunks. */
export function evaluateImageSet(model: LayersModel, set: ImageSet, chunkSize = 1000): BatchTotals {
  let totals = EMPTY_TOTALS;
  for (let start = 0; start < set.count; start += chunkSize) {
    const indices = Array.from({ length: Math.min(chunkSize, set.count - start) }, (_, i) => start + i);
    totals = addTotals(totals, evaluateBatch(model, gatherBatch(set, indices)));
  }
  return totals;
}
