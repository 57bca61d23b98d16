import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { EpochSampler, type SamplerPosition } from './sampler.js';

function allBatches(sampler: EpochSampler, epoch: number): Uint32Array[] {
  return Array.from({ length: sampler.batchesPerEpoch }, (_, batch) => sampler.batchIndices(epoch, batch));
}

const expectInvalidArgument = expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT });

describe('EpochSampler', () => {
  it('visits every index exactly once per epoch, keeping the partial last batch', () => {
    const sampler = new EpochSampler({ datasetSize: 1003, batchSize: 64, seed: 9 });
    expect(sampler.batchesPerEpoch).toBe(16);
    for (const epoch of [0, 1, 5]) {
      const batches = allBatches(sampler, epoch);
      expect(batches.map((batch) => batch.length)).toEqual([...new Array(15).fill(64), 1003 - 15 * 64]);
      const visited = batches.flatMap((batch) => Array.from(batch));
      expect(visited).toEqual(Array.from(sampler.epochOrder(epoch)));
      expect([...visited].sort((a, b) => a - b)).toEqual(Array.from({ length: 1003 }, (_, i) => i));
    }
  });

  it('shuffles: the order is not the identity', () => {
    const order = new EpochSampler({ datasetSize: 100, batchSize: 10, seed: 0 }).epochOrder(0);
    expect(Array.from(order)).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('derives each epoch from (seed, epoch) alone', () => {
    const options = { datasetSize: 500, batchSize: 32, seed: 1234 };
    const visitedInOrder = new EpochSampler(options);
    const orders = [0, 1, 2, 3].map((epoch) => visitedInOrder.epochOrder(epoch));
    const visitedBackwards = new EpochSampler(options);
    for (const epoch of [3, 2, 1, 0]) expect(visitedBackwards.epochOrder(epoch)).toEqual(orders[epoch]);
    expect(new EpochSampler(options).batchIndices(2, 7)).toEqual(visitedInOrder.batchIndices(2, 7));
  });

  it('gives different orders for different epochs and different seeds', () => {
    const orderOf = (seed: number, epoch: number) =>
      Array.from(new EpochSampler({ datasetSize: 200, batchSize: 50, seed }).epochOrder(epoch)).join();
    const orders = [0, 1, 2, 0xffffffff].flatMap((seed) => [0, 1, 2, 3].map((epoch) => orderOf(seed, epoch)));
    expect(new Set(orders).size).toBe(orders.length);
  });

  it('returns arrays the caller may modify without affecting later draws', () => {
    const sampler = new EpochSampler({ datasetSize: 10, batchSize: 4, seed: 3 });
    const first = sampler.batchIndices(0, 0);
    const expected = Array.from(first);
    first.fill(0);
    sampler.epochOrder(0).fill(0);
    expect(Array.from(sampler.batchIndices(0, 0))).toEqual(expected);
  });

  it('handles a batch larger than the dataset as one partial batch', () => {
    const sampler = new EpochSampler({ datasetSize: 5, batchSize: 64, seed: 1 });
    expect(sampler.batchesPerEpoch).toBe(1);
    expect(Array.from(sampler.batchIndices(0, 0)).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it.each([
    { datasetSize: 0, batchSize: 1, seed: 0 },
    { datasetSize: 10, batchSize: 0, seed: 0 },
    { datasetSize: 10, batchSize: 2.5, seed: 0 },
    { datasetSize: 10, batchSize: 2, seed: -1 },
    { datasetSize: 10, batchSize: 2, seed: 2 ** 32 },
  ])('rejects options %o', (options) => {
    expect(() => new EpochSampler(options)).toThrow(expectInvalidArgument);
  });

  it('rejects out-of-range epochs and batch indices', () => {
    const sampler = new EpochSampler({ datasetSize: 10, batchSize: 4, seed: 0 });
    expect(() => sampler.batchIndices(0, 3)).toThrow(
      expect.objectContaining({
        code: ErrorCodes.INVALID_ARGUMENT,
        message: 'EpochSampler: batchIndex must be an integer in 0..2, got 3',
      }),
    );
    expect(() => sampler.batchIndices(-1, 0)).toThrow(expectInvalidArgument);
    expect(() => sampler.epochOrder(0.5)).toThrow(expectInvalidArgument);
  });
});

describe('sampler positions', () => {
  const sampler = new EpochSampler({ datasetSize: 10, batchSize: 4, seed: 5 });

  it('advance batch by batch and roll over into the next epoch', () => {
    let position: SamplerPosition = sampler.positionAtStep(0);
    const visited: SamplerPosition[] = [];
    for (let step = 0; step < 7; step++) {
      expect(position).toEqual(sampler.positionAtStep(step));
      visited.push(position);
      position = sampler.nextPosition(position);
    }
    expect(visited.map(({ epoch, batchIndex }) => `${epoch}:${batchIndex}`)).toEqual([
      '0:0',
      '0:1',
      '0:2',
      '1:0',
      '1:1',
      '1:2',
      '2:0',
    ]);
  });

  it('resume exactly from a checkpointed position', () => {
    const draw = (from: SamplerPosition, steps: number, on: EpochSampler) => {
      const batches: number[][] = [];
      let position = from;
      for (let i = 0; i < steps; i++) {
        batches.push(Array.from(on.batchIndices(position.epoch, position.batchIndex)));
        position = on.nextPosition(position);
      }
      return { batches, position };
    };
    const uninterrupted = draw(sampler.positionAtStep(0), 8, sampler);
    const beforeCheckpoint = draw(sampler.positionAtStep(0), 5, sampler);
    const checkpoint = JSON.parse(JSON.stringify(beforeCheckpoint.position)) as SamplerPosition;
    const restarted = new EpochSampler({ datasetSize: 10, batchSize: 4, seed: 5 });
    const afterCheckpoint = draw(checkpoint, 3, restarted);
    expect([...beforeCheckpoint.batches, ...afterCheckpoint.batches]).toEqual(uninterrupted.batches);
    expect(afterCheckpoint.position).toEqual(uninterrupted.position);
  });

  it('reject positions that do not fit the sampler', () => {
    expect(() => sampler.nextPosition({ epoch: 0, batchIndex: 3 })).toThrow(expectInvalidArgument);
    expect(() => sampler.nextPosition({ epoch: -1, batchIndex: 0 })).toThrow(expectInvalidArgument);
    expect(() => sampler.positionAtStep(-1)).toThrow(expectInvalidArgument);
  });
});
