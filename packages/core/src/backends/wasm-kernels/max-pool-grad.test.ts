import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels, wasmKernelBeforeReplacement } from './index.js';
import { createMaxPoolGradKernel } from './max-pool-grad.js';
import { computeOnCpuAndWasm, seededIntegers, seededUniform, withWasmKernel } from './test-support.js';

registerWasmTrainingKernels();

type Shape4D = [number, number, number, number];

interface PoolCase {
  name: string;
  xShape: Shape4D;
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: tf.MaxPoolGradAttrs['pad'];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

// One case a row with every shape spelled out, like conv2d-backprop-filter.test.ts: alike by design.
const cases: PoolCase[] = [
  {
    name: '2x2/2 valid after the small CNN conv',
    xShape: [4, 26, 26, 32],
    filterSize: 2,
    strides: 2,
    pad: 'valid',
  },
  {
    name: '2x2/2 valid on odd sizes (the last row and column are in no window)',
    xShape: [2, 7, 9, 3],
    filterSize: 2,
    strides: 2,
    pad: 'valid',
  },
  {
    name: '2x2/2 same on odd sizes (padded windows)',
    xShape: [2, 5, 7, 3],
    filterSize: 2,
    strides: 2,
    pad: 'same',
  },
  {
    name: '2x2/2 exact tiling, 7 channels (one f32x4 and three single lanes)',
    xShape: [3, 6, 10, 7],
    filterSize: 2,
    strides: 2,
    pad: 'valid',
  },
  {
    name: '2x2/2 exact tiling, batch 1, 3 channels (single lanes only)',
    xShape: [1, 4, 6, 3],
    filterSize: 2,
    strides: 2,
    pad: 'same',
  },
  { name: '3x3/2 same', xShape: [2, 13, 13, 8], filterSize: 3, strides: 2, pad: 'same' },
  { name: '3x3/2 same, odd sizes, batch 1', xShape: [1, 7, 9, 3], filterSize: 3, strides: 2, pad: 'same' },
  { name: '3x3/1 valid, overlapping windows', xShape: [2, 8, 6, 2], filterSize: 3, strides: 1, pad: 'valid' },
  {
    name: '2x3 filter, strides [1, 2], same',
    xShape: [2, 9, 10, 5],
    filterSize: [2, 3],
    strides: [1, 2],
    pad: 'same',
  },
  {
    name: 'numeric pad 1, ceil rounding',
    xShape: [2, 7, 7, 3],
    filterSize: 3,
    strides: 2,
    pad: 1,
    dimRoundingMode: 'ceil',
  },
];

/**
 * Inputs from {-2, …, 1}: most windows hold several equal maxima, and some hold only negative values or
 * only zeros (as after a dead ReLU), the cases where the gradient's destination is a matter of convention.
 */
function poolGradient(testCase: PoolCase, xValues: Float32Array): () => tf.Tensor {
  const { xShape, filterSize, strides, pad, dimRoundingMode } = testCase;
  return () => {
    const x = tf.tensor4d(xValues, xShape);
    const y = tf.maxPool(x, filterSize, strides, pad, dimRoundingMode);
    const dy = tf.tensor(seededUniform(y.size, 8), y.shape);
    const attrs: tf.MaxPoolGradAttrs = { filterSize, strides, pad };
    if (dimRoundingMode !== undefined) {
      attrs.dimRoundingMode = dimRoundingMode;
    }
    return tf
      .engine()
      .runKernel<tf.Tensor>(tf.MaxPoolGrad, { dy, input: x, output: y }, attrs as unknown as tf.NamedAttrMap);
  };
}

/** Values from {-∞, NaN, -2, …, 1}: windows mixing ties, NaN and -Infinity, and windows of only those two. */
function withNonFinite(size: number, seed: number): Float32Array {
  const special = [Number.NEGATIVE_INFINITY, Number.NaN];
  return seededIntegers(size, seed, -4, 1).map((value) =>
    value < -2 ? (special[value + 4] as number) : value,
  );
}

/**
 * Where windows do not overlap, dy is only routed and must equal the cpu backend's exactly. Overlapping
 * windows add several dy (in [-1, 1)) into one dx element, in float32 here and float64 on cpu.
 */
async function expectMatchesCpu(testCase: PoolCase, xValues: Float32Array): Promise<void> {
  const { cpu, wasm, maxAbsDifference } = await computeOnCpuAndWasm(poolGradient(testCase, xValues));
  expect(wasm.shape).toEqual(testCase.xShape);
  expect(cpu.shape).toEqual(testCase.xShape);
  if (isExactTiling(testCase)) {
    expect(wasm.values).toEqual(cpu.values);
  } else {
    expect(maxAbsDifference).toBeLessThanOrEqual(1e-6);
  }
}

function isExactTiling({ xShape, filterSize, strides }: PoolCase): boolean {
  return filterSize === 2 && strides === 2 && xShape[1] % 2 === 0 && xShape[2] % 2 === 0;
}

const exactTilings = cases.filter(isExactTiling);

/** The kernel as it runs where core's kernels cannot use the backend's heap: JavaScript throughout. */
const withoutHeapKernels = createMaxPoolGradKernel(
  wasmKernelBeforeReplacement(tf.MaxPoolGrad) as tf.KernelConfig,
  () => undefined,
);

describe('MaxPoolGrad on wasm', () => {
  it.each(cases)('matches the cpu backend, ties included: $name', (testCase) =>
    expectMatchesCpu(testCase, seededIntegers(tf.util.sizeFromShape(testCase.xShape), 7, -2, 1)),
  );

  it.each(exactTilings)('matches the cpu backend with NaN and -Infinity: $name', (testCase) =>
    expectMatchesCpu(testCase, withNonFinite(tf.util.sizeFromShape(testCase.xShape), 9)),
  );

  describe("without core's kernels on the heap (JavaScript)", () => {
    it.each(exactTilings)('matches the cpu backend: $name', (testCase) =>
      withWasmKernel(withoutHeapKernels, () =>
        expectMatchesCpu(testCase, withNonFinite(tf.util.sizeFromShape(testCase.xShape), 10)),
      ),
    );
  });

  it('matches the cpu backend on windows of only -Infinity or NaN', async () => {
    const xValues = Float32Array.from([
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      Number.NaN,
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      Number.NaN,
      Number.NaN,
      3,
      1,
      1,
      -5,
      Number.NaN,
      1,
      1,
    ]);
    const testCase: PoolCase = {
      name: 'non-finite',
      xShape: [1, 4, 4, 1],
      filterSize: 2,
      strides: 2,
      pad: 'valid',
    };
    const { cpu, wasm } = await computeOnCpuAndWasm(poolGradient(testCase, xValues));
    expect(wasm.values).toEqual(cpu.values);
  });
});
