/**
 * Deterministic epoch sampling: each epoch visits every sample exactly once, in an order that depends only on
 * (seed, epoch), cut into `batchesPerEpoch` consecutive batches; the last one is kept even when partial.
 */
import { requireIntegerInRange } from './checks.js';
import { mix32, randomBelow, splitmix32 } from './random.js';

/** Where training stands: the next batch to draw. Plain data, so a checkpoint can store it and resume. */
export interface SamplerPosition {
  readonly epoch: number;
  readonly batchIndex: number;
}

export interface EpochSamplerOptions {
  readonly datasetSize: number;
  readonly batchSize: number;
  /** Any 32-bit unsigned integer. */
  readonly seed: number;
}

const MAX_UINT32 = 0xffffffff;

/** The batches an epoch of `datasetSize` samples is cut into: the last one kept even when partial. */
export function batchesPerEpoch(datasetSize: number, batchSize: number): number {
  return Math.ceil(datasetSize / batchSize);
}

export class EpochSampler {
  readonly datasetSize: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly batchesPerEpoch: number;
  /** The most recent epoch's order, so drawing its batches one by one does not reshuffle each time. */
  #lastOrder: { readonly epoch: number; readonly order: Uint32Array } | undefined;

  constructor(options: EpochSamplerOptions) {
    requireIntegerInRange('EpochSampler: datasetSize', options.datasetSize, 1, MAX_UINT32);
    requireIntegerInRange('EpochSampler: batchSize', options.batchSize, 1);
    requireIntegerInRange('EpochSampler: seed', options.seed, 0, MAX_UINT32);
    this.datasetSize = options.datasetSize;
    this.batchSize = options.batchSize;
    this.seed = options.seed;
    this.batchesPerEpoch = batchesPerEpoch(options.datasetSize, options.batchSize);
  }

  /** Every sample index once, in this epoch's order. A fresh array the caller may keep or modify. */
  epochOrder(epoch: number): Uint32Array {
    return this.#order(epoch).slice();
  }

  /** The sample indices of one batch: `batchSize` of them, or fewer for the last batch of an epoch. */
  batchIndices(epoch: number, batchIndex: number): Uint32Array {
    requireIntegerInRange('EpochSampler: batchIndex', batchIndex, 0, this.batchesPerEpoch - 1);
    const start = batchIndex * this.batchSize;
    return this.#order(epoch).slice(start, Math.min(start + this.batchSize, this.datasetSize));
  }

  /** The position after `position`: the next batch, rolling over into the next epoch. */
  nextPosition(position: SamplerPosition): SamplerPosition {
    requireIntegerInRange('EpochSampler: position.epoch', position.epoch, 0, MAX_UINT32);
    requireIntegerInRange(
      'EpochSampler: position.batchIndex',
      position.batchIndex,
      0,
      this.batchesPerEpoch - 1,
    );
    return position.batchIndex + 1 < this.batchesPerEpoch
      ? { epoch: position.epoch, batchIndex: position.batchIndex + 1 }
      : { epoch: position.epoch + 1, batchIndex: 0 };
  }

  /** The position reached after `step` batches from the very start (step 0 is epoch 0, batch 0). */
  positionAtStep(step: number): SamplerPosition {
    requireIntegerInRange('EpochSampler: step', step, 0);
    return { epoch: Math.floor(step / this.batchesPerEpoch), batchIndex: step % this.batchesPerEpoch };
  }

  #order(epoch: number): Uint32Array {
    requireIntegerInRange('EpochSampler: epoch', epoch, 0, MAX_UINT32);
    if (this.#lastOrder?.epoch !== epoch) {
      this.#lastOrder = { epoch, order: shuffledIndices(this.datasetSize, this.seed, epoch) };
    }
    return this.#lastOrder.order;
  }
}

/** Fisher–Yates over 0..size-1, driven by a generator seeded from (seed, epoch) alone. */
function shuffledIndices(size: number, seed: number, epoch: number): Uint32Array {
  // Hashing twice gives each epoch an unrelated starting state, not a shifted copy of the previous stream.
  const nextUint32 = splitmix32(mix32(mix32(seed) ^ epoch));
  const order = new Uint32Array(size);
  for (let i = 0; i < size; i++) order[i] = i;
  for (let i = size - 1; i > 0; i--) {
    const j = randomBelow(nextUint32, i + 1);
    // Both indices are in 0..size-1, so neither read is undefined.
    const picked = order[j] as number;
    order[j] = order[i] as number;
    order[i] = picked;
  }
  return order;
}
