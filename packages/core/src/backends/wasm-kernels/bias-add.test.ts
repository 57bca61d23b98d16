import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { createBiasAddKernel } from './bias-add.js';
import { registerWasmTrainingKernels, wasmKernelBeforeReplacement } from './index.js';
import { computeOnCpuAndWasm, seededIntegers, seededUniform, withWasmKernel } from './test-support.js';

registerWasmTrainingKernels();

interface AddCase {
  name: string;
  aShape: number[];
  bShape: number[];
  dtype?: 'float32' | 'int32';
}

const cases: AddCase[] = [
  { name: 'conv bias: [16,26,26,32] + [32]', aShape: [16, 26, 26, 32], bShape: [32] },
  { name: 'dense bias: [64,128] + [128]', aShape: [64, 128], bShape: [128] },
  { name: 'odd columns: [4,7,5] + [5]', aShape: [4, 7, 5], bShape: [5] },
  { name: 'batch 1, 7 channels: [1,5,5,7] + [1,1,7]', aShape: [1, 5, 5, 7], bShape: [1, 1, 7] },
  { name: 'a row of rank 2: [2,3,6] + [3,6]', aShape: [2, 3, 6], bShape: [3, 6] },
  { name: "same shapes (wasm's kernel)", aShape: [4, 5], bShape: [4, 5] },
  { name: "broadcast along another axis (wasm's kernel)", aShape: [4, 5], bShape: [4, 1] },
  { name: "a scalar (wasm's kernel)", aShape: [4, 5], bShape: [] },
  { name: "the row first (wasm's kernel)", aShape: [5], bShape: [4, 5] },
  { name: "int32 (wasm's kernel)", aShape: [3, 4], bShape: [4], dtype: 'int32' },
];

function sum({ aShape, bShape, dtype = 'float32' }: AddCase): () => tf.Tensor {
  const values = (shape: number[], seed: number) => {
    const size = tf.util.sizeFromShape(shape);
    return dtype === 'int32' ? seededIntegers(size, seed, -100, 100) : seededUniform(size, seed, -3, 3);
  };
  const a = values(aShape, 31);
  const b = values(bShape, 32);
  return () => tf.add(tf.tensor(a, aShape, dtype), tf.tensor(b, bShape, dtype));
}

/** The kernel as it runs where core's kernels cannot use the backend's heap: wasm's own throughout. */
const withoutHeapKernels = createBiasAddKernel(
  wasmKernelBeforeReplacement(tf.Add) as tf.KernelConfig,
  () => undefined,
);

// One float32 rounding per element on both backends: the results must be equal to the bit.
async function expectMatchesCpu(testCase: AddCase): Promise<void> {
  const { cpu, wasm } = await computeOnCpuAndWasm(sum(testCase));
  expect(wasm.shape).toEqual(cpu.shape);
  expect(wasm.values).toEqual(cpu.values);
}

describe('Add on wasm', () => {
  it.each(cases)('matches the cpu backend exactly: $name', expectMatchesCpu);

  describe("without core's kernels on the heap (wasm's kernel)", () => {
    it.each(cases.slice(0, 3))('matches the cpu backend exactly: $name', (testCase) =>
      withWasmKernel(withoutHeapKernels, () => expectMatchesCpu(testCase)),
    );
  });
});
