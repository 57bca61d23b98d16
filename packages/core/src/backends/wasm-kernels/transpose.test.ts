import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels, wasmKernelBeforeReplacement } from './index.js';
import { computeOnCpuAndWasm, seededIntegers, seededUniform, withWasmKernel } from './test-support.js';
import { createTransposeKernel } from './transpose.js';

registerWasmTrainingKernels();

interface TransposeCase {
  name: string;
  shape: number[];
  perm: number[];
  dtype: 'float32' | 'int32';
}

const cases: TransposeCase[] = [
  { name: 'the dense activation [128, 5408]', shape: [128, 5408], perm: [1, 0], dtype: 'float32' },
  { name: 'odd sizes [37, 23] (partial tiles and bands)', shape: [37, 23], perm: [1, 0], dtype: 'float32' },
  { name: 'narrower than a tile [3, 70]', shape: [3, 70], perm: [1, 0], dtype: 'float32' },
  { name: 'one element', shape: [1, 1], perm: [1, 0], dtype: 'float32' },
  { name: 'a batch of matrices [3, 18, 9]', shape: [3, 18, 9], perm: [0, 2, 1], dtype: 'float32' },
  { name: 'rank 4 [2, 3, 5, 8]', shape: [2, 3, 5, 8], perm: [0, 1, 3, 2], dtype: 'float32' },
  { name: 'int32 [20, 17]', shape: [20, 17], perm: [1, 0], dtype: 'int32' },
  { name: 'empty [0, 4]', shape: [0, 4], perm: [1, 0], dtype: 'float32' },
  { name: "another permutation (wasm's kernel)", shape: [4, 6, 5], perm: [1, 0, 2], dtype: 'float32' },
];

function transposed({ shape, perm, dtype }: TransposeCase): () => tf.Tensor {
  const size = tf.util.sizeFromShape(shape);
  const values = dtype === 'int32' ? seededIntegers(size, 3, -1000, 1000) : seededUniform(size, 3);
  return () => tf.transpose(tf.tensor(values, shape, dtype), perm);
}

/** The kernel as it runs where core's kernels cannot use the backend's heap: wasm's own throughout. */
const withoutHeapKernels = createTransposeKernel(
  wasmKernelBeforeReplacement(tf.Transpose) as tf.KernelConfig,
  () => undefined,
);

// A transpose copies, so the result must equal the cpu backend's to the bit.
async function expectMatchesCpu(testCase: TransposeCase): Promise<void> {
  const { cpu, wasm } = await computeOnCpuAndWasm(transposed(testCase));
  expect(wasm.shape).toEqual(cpu.shape);
  expect(wasm.values).toEqual(cpu.values);
}

describe('Transpose on wasm', () => {
  it.each(cases)('matches the cpu backend exactly: $name', expectMatchesCpu);

  describe("without core's kernels on the heap (wasm's kernel)", () => {
    it.each(cases.slice(0, 3))('matches the cpu backend exactly: $name', (testCase) =>
      withWasmKernel(withoutHeapKernels, () => expectMatchesCpu(testCase)),
    );
  });
});
