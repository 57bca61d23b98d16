import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from './index.js';
import { computeOnCpuAndWasm, maxAbsDifference, seededIntegers, seededUniform } from './test-support.js';

registerWasmTrainingKernels();

interface SegmentCase {
  name: string;
  /** How many ids (segmentIds is rank 1: tfjs flattens Gather's indices first). */
  ids: number;
  sliceShape: number[];
  numSegments: number;
  dtype?: 'float32' | 'int32';
}

const cases: SegmentCase[] = [
  {
    name: "an embedding's gradient: 640 ids, rows of 16",
    ids: 640,
    sliceShape: [16],
    numSegments: 100,
  },
  { name: 'one id, a row of 5 (batch 1)', ids: 1, sliceShape: [5], numSegments: 3 },
  { name: 'ids of rank 1, slices of rank 2', ids: 9, sliceShape: [3, 2], numSegments: 4 },
  { name: 'more segments than ids (some stay 0)', ids: 5, sliceShape: [3], numSegments: 11 },
  { name: 'int32', ids: 6, sliceShape: [4], numSegments: 3, dtype: 'int32' },
];

function segmentSum({
  ids: positions,
  sliceShape,
  numSegments,
  dtype = 'float32',
}: SegmentCase): () => tf.Tensor {
  const size = positions * tf.util.sizeFromShape(sliceShape);
  const values = dtype === 'int32' ? seededIntegers(size, 41, -50, 50) : seededUniform(size, 41, -2, 2);
  // Ids from -1 to numSegments: the out-of-range ones add nothing on either backend.
  const ids = seededIntegers(positions, 42, -1, numSegments);
  return () =>
    tf.unsortedSegmentSum(
      tf.tensor(values, [positions, ...sliceShape], dtype),
      tf.tensor1d(ids, 'int32'),
      numSegments,
    );
}

describe('UnsortedSegmentSum on wasm (missing from tfjs-backend-wasm)', () => {
  it.each(cases)('matches the cpu backend: $name', async (testCase) => {
    const { cpu, wasm } = await computeOnCpuAndWasm(segmentSum(testCase));
    expect(wasm.shape).toEqual(cpu.shape);
    // Both add in float32; the cpu backend sums each segment in its own order, so allow rounding.
    expect(maxAbsDifference(wasm.values, cpu.values)).toBeLessThanOrEqual(1e-5);
    expect(wasm.values.some((value) => value !== 0)).toBe(true);
  });
});

describe("an embedding table's gradient on wasm", () => {
  it('is computed (Gather backpropagates through UnsortedSegmentSum) and matches the cpu backend', async () => {
    const tokens = seededIntegers(8 * 12, 43, 0, 49);
    const table = seededUniform(50 * 6, 44);
    const weights = seededUniform(8 * 12 * 6, 45);
    const gradient = () =>
      tf.grad((embeddings: tf.Tensor) =>
        tf.sum(
          tf.mul(tf.gather(embeddings, tf.tensor(tokens, [8, 12], 'int32')), tf.tensor(weights, [8, 12, 6])),
        ),
      )(tf.tensor(table, [50, 6]));
    const { cpu, wasm } = await computeOnCpuAndWasm(gradient);
    expect(wasm.shape).toEqual([50, 6]);
    expect(maxAbsDifference(wasm.values, cpu.values)).toBeLessThanOrEqual(1e-5);
  });
});
