import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from './index.js';
import { computeOnCpuAndWasm, seededUniform } from './test-support.js';

registerWasmTrainingKernels();

interface MatMulCase {
  name: string;
  /** Leading (batch) dimensions of a and b. */
  batchA: number[];
  batchB: number[];
  /** The product is [...batch, m, n] with inner dimension k. */
  m: number;
  k: number;
  n: number;
}

const cases: MatMulCase[] = [
  { name: 'matrices', batchA: [], batchB: [], m: 64, k: 300, n: 40 },
  { name: 'dense layer backprop', batchA: [], batchB: [], m: 32, k: 1352, n: 64 },
  { name: 'row vector times matrix', batchA: [], batchB: [], m: 1, k: 50, n: 7 },
  { name: 'matrix times column vector', batchA: [], batchB: [], m: 9, k: 50, n: 1 },
  { name: 'dot product of vectors', batchA: [], batchB: [], m: 1, k: 33, n: 1 },
  { name: 'outer product', batchA: [], batchB: [], m: 5, k: 1, n: 6 },
  { name: 'unit batch dimensions', batchA: [1, 1], batchB: [1], m: 6, k: 11, n: 4 },
  { name: 'batch of 3', batchA: [3], batchB: [3], m: 5, k: 7, n: 4 },
  { name: 'batch 1 broadcast against batch 3', batchA: [1], batchB: [3], m: 5, k: 7, n: 4 },
  { name: 'batch 3 broadcast against batch 1', batchA: [3], batchB: [1], m: 5, k: 7, n: 4 },
  { name: 'batch 3 against a plain matrix', batchA: [3], batchB: [], m: 5, k: 7, n: 4 },
  { name: 'plain matrix against batch 3', batchA: [], batchB: [3], m: 5, k: 7, n: 4 },
  { name: 'two batch dimensions', batchA: [2, 3], batchB: [2, 3], m: 4, k: 6, n: 5 },
];

const transposeCombinations = [
  { transposeA: false, transposeB: false },
  { transposeA: true, transposeB: false },
  { transposeA: false, transposeB: true },
  { transposeA: true, transposeB: true },
];

const table = cases.flatMap((testCase) =>
  transposeCombinations.map((transposes) => ({ ...testCase, ...transposes })),
);

function storedShape(batch: number[], rows: number, cols: number, transposed: boolean): number[] {
  return [...batch, ...(transposed ? [cols, rows] : [rows, cols])];
}

describe('BatchMatMul on wasm', () => {
  it.each(table)(
    'matches the cpu backend: $name, transposeA=$transposeA, transposeB=$transposeB',
    async ({ batchA, batchB, m, k, n, transposeA, transposeB }) => {
      const aShape = storedShape(batchA, m, k, transposeA);
      const bShape = storedShape(batchB, k, n, transposeB);
      const aValues = seededUniform(tf.util.sizeFromShape(aShape), 3);
      const bValues = seededUniform(tf.util.sizeFromShape(bShape), 4);
      const product = () =>
        tf.matMul(tf.tensor(aValues, aShape), tf.tensor(bValues, bShape), transposeA, transposeB);

      const { cpu, wasm, maxAbsDifference } = await computeOnCpuAndWasm(product);
      expect(wasm.shape).toEqual(cpu.shape);
      expect(maxAbsDifference).toBeLessThanOrEqual(1e-4);
    },
  );

  it('frees the transposed copies it makes', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const a = tf.tensor(seededUniform(64 * 30, 5), [30, 64]);
    const b = tf.tensor(seededUniform(20 * 30, 6), [20, 30]);
    const dataIdsBefore = backend.numDataIds();
    const tensorsBefore = tf.memory().numTensors;

    tf.matMul(a, b, true, true).dispose();

    expect(backend.numDataIds()).toBe(dataIdsBefore);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    tf.dispose([a, b]);
  });
});
