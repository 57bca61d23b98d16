import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { isCallosumError } from '../../errors.js';
import { createConv2DBackpropFilterKernel } from './conv2d-backprop-filter.js';
import { heapKernelsFor } from './heap-kernels.js';
import { registerWasmTrainingKernels, wasmKernelBeforeReplacement } from './index.js';
import { computeOn, computeOnCpuAndWasm, seededUniform, withWasmKernel } from './test-support.js';

registerWasmTrainingKernels();

type Shape4D = [number, number, number, number];
type Pad = tf.Conv2DBackpropFilterAttrs['pad'];

interface FilterGradientCase {
  name: string;
  xShape: Shape4D;
  filterShape: Shape4D;
  strides: number | [number, number];
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

// One case a row with every shape spelled out: the rows (and max-pool-grad.test.ts's) look alike by design.
const cases: FilterGradientCase[] = [
  {
    name: 'small CNN layer 28x28x1 -> 32 3x3 valid',
    xShape: [16, 28, 28, 1],
    filterShape: [3, 3, 1, 32],
    strides: 1,
    pad: 'valid',
  },
  {
    name: 'LeNet C1 5x5 same 1 -> 6',
    xShape: [4, 28, 28, 1],
    filterShape: [5, 5, 1, 6],
    strides: 1,
    pad: 'same',
  },
  {
    name: 'LeNet C3 5x5 valid 6 -> 16',
    xShape: [4, 14, 14, 6],
    filterShape: [5, 5, 6, 16],
    strides: 1,
    pad: 'valid',
  },
  {
    name: 'LeNet C3 5x5 same 6 -> 16',
    xShape: [2, 14, 14, 6],
    filterShape: [5, 5, 6, 16],
    strides: 1,
    pad: 'same',
  },
  {
    name: 'stride 2 same, odd sizes',
    xShape: [3, 11, 9, 3],
    filterShape: [3, 3, 3, 4],
    strides: 2,
    pad: 'same',
  },
  {
    name: 'strides [2, 3] valid, non-square filter',
    xShape: [2, 13, 7, 2],
    filterShape: [3, 2, 2, 5],
    strides: [2, 3],
    pad: 'valid',
  },
  { name: 'numeric pad 1', xShape: [2, 9, 10, 3], filterShape: [3, 3, 3, 4], strides: 1, pad: 1 },
  {
    name: 'numeric pad 2, stride 2, ceil rounding',
    xShape: [1, 8, 7, 2],
    filterShape: [3, 3, 2, 3],
    strides: 2,
    pad: 2,
    dimRoundingMode: 'ceil',
  },
  {
    name: 'explicit asymmetric pads, strides [2, 1]',
    xShape: [2, 10, 8, 3],
    filterShape: [4, 3, 3, 2],
    strides: [2, 1],
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
  {
    name: 'batch 1, filter as large as the input',
    xShape: [1, 5, 5, 1],
    filterShape: [5, 5, 1, 2],
    strides: 1,
    pad: 'valid',
  },
  // 37 output channels: one block of 32 in registers, one f32x4 and one scalar channel.
  {
    name: 'odd sizes, 3 -> 37 channels, stride 2 same',
    xShape: [3, 9, 11, 3],
    filterShape: [3, 3, 3, 37],
    strides: 2,
    pad: 'same',
  },
  {
    name: 'batch 1, odd sizes, 7 -> 33 channels, stride 1 same',
    xShape: [1, 7, 5, 7],
    filterShape: [3, 3, 7, 33],
    strides: 1,
    pad: 'same',
  },
  {
    name: 'batch 1, 5 -> 3 channels (scalar only), stride 2 valid',
    xShape: [1, 10, 9, 5],
    filterShape: [2, 3, 5, 3],
    strides: 2,
    pad: 'valid',
  },
  // Three-tap blocks of 16 channels with uneven padding: a column seen by the first tap alone (right of
  // the image, pad right 0) and by the third alone (left, pad left 4).
  {
    name: 'uneven pads [1, 0] x [4, 0], strides [1, 2], 6 filter columns, 17 channels',
    xShape: [2, 9, 11, 3],
    filterShape: [2, 6, 3, 17],
    strides: [1, 2],
    pad: [
      [0, 0],
      [1, 0],
      [4, 0],
      [0, 0],
    ],
  },
  {
    name: 'left pad 0, right pad 2, 16 channels',
    xShape: [3, 8, 10, 2],
    filterShape: [3, 3, 2, 16],
    strides: 1,
    pad: [
      [0, 0],
      [1, 1],
      [0, 2],
      [0, 0],
    ],
  },
  {
    name: 'two blocks of 32: 14x14x16 -> 64 3x3 same',
    xShape: [2, 14, 14, 16],
    filterShape: [3, 3, 16, 64],
    strides: 1,
    pad: 'same',
  },
];

// 2·498·498 output pixels: the patch matrix exceeds its size cap and is built in two bands of taps.
const largeImage: FilterGradientCase = {
  name: 'large image, built in bands',
  xShape: [2, 500, 500, 1],
  filterShape: [3, 3, 1, 2],
  strides: 1,
  pad: 'valid',
};

/**
 * The kernel as it runs where neither core's native kernels nor its kernels on the backend's heap can:
 * the patch matrix times dy by wasm's own XNNPACK product.
 */
const withoutHeapKernels = createConv2DBackpropFilterKernel(
  (wasmKernelBeforeReplacement(tf.BatchMatMul) as tf.KernelConfig).kernelFunc,
  () => undefined,
  () => undefined,
);
/** The kernel as it runs where core's native kernels are not available: the WebAssembly heap kernel. */
const withoutNativeKernels = createConv2DBackpropFilterKernel(
  (wasmKernelBeforeReplacement(tf.BatchMatMul) as tf.KernelConfig).kernelFunc,
  heapKernelsFor,
  () => undefined,
);

function filterGradient(testCase: FilterGradientCase, dataFormat: 'NHWC' | 'NCHW' = 'NHWC'): () => tf.Tensor {
  const { xShape, filterShape, strides, pad, dimRoundingMode } = testCase;
  const outShape = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
  ).outShape;
  // Training-like magnitudes: activations in [0, 1), gradients of a batch-mean loss of order 1e-2. The cpu
  // backend sums in float64 and XNNPACK in float32, so the absolute gap grows with |x|·|dy|·√pixels: with
  // dy in [-1, 1) the 16×28×28 case differs by 3e-4, a relative 1e-5, i.e. float32 rounding.
  const xValues = seededUniform(tf.util.sizeFromShape(xShape), 1, 0, 1);
  const dyValues = seededUniform(tf.util.sizeFromShape(outShape), 2, -0.01, 0.01);
  const attrs: tf.Conv2DBackpropFilterAttrs = { strides, pad, dataFormat, filterShape };
  if (dimRoundingMode !== undefined) {
    attrs.dimRoundingMode = dimRoundingMode;
  }
  return () =>
    tf
      .engine()
      .runKernel<tf.Tensor>(
        tf.Conv2DBackpropFilter,
        { x: tf.tensor4d(xValues, xShape), dy: tf.tensor4d(dyValues, outShape) },
        attrs as unknown as tf.NamedAttrMap,
      );
}

// Tolerance: x in [0, 1) and dy in ±0.01 give sums of order 0.1–1 over up to 10⁴ products; float32
// rounding of the kernel's sums (the same as XNNPACK's) against the cpu backend's float64 stays below 1e-4.
async function expectMatchesCpu(testCase: FilterGradientCase): Promise<void> {
  const { cpu, wasm, maxAbsDifference } = await computeOnCpuAndWasm(filterGradient(testCase));
  expect(wasm.shape).toEqual(testCase.filterShape);
  expect(cpu.shape).toEqual(testCase.filterShape);
  expect(maxAbsDifference).toBeLessThanOrEqual(1e-4);
}

describe('Conv2DBackpropFilter on wasm', () => {
  it.each([...cases, largeImage])('matches the cpu backend: $name', expectMatchesCpu);

  // The patch matrix and XNNPACK were this kernel before the heap kernel replaced it (aee39b7): XNNPACK's
  // GEMM adds each output's products one by one in pixel order, in float32, and so must the heap kernel
  // and the native one (where it is built: the registered kernel) for training to keep its bits.
  it.each([...cases, largeImage])(
    'gives the bits of the patch matrix and XNNPACK, as registered and on the heap kernel: $name',
    async (testCase) => {
      const patches = await withWasmKernel(withoutHeapKernels, () =>
        computeOn('wasm', filterGradient(testCase)),
      );
      const registered = await computeOn('wasm', filterGradient(testCase));
      const heap = await withWasmKernel(withoutNativeKernels, () =>
        computeOn('wasm', filterGradient(testCase)),
      );
      expect(bitsOf(registered.values)).toEqual(bitsOf(patches.values));
      expect(bitsOf(heap.values)).toEqual(bitsOf(patches.values));
    },
  );

  it('gives the same bits on every call', async () => {
    const first = await computeOn('wasm', filterGradient(cases[0] as FilterGradientCase));
    const second = await computeOn('wasm', filterGradient(cases[0] as FilterGradientCase));
    expect(second.values).toEqual(first.values);
  });

  describe("without core's kernels on the heap (the patch matrix and XNNPACK)", () => {
    it.each([...cases.slice(0, 2), ...cases.slice(-3), largeImage])(
      'matches the cpu backend: $name',
      (testCase) => withWasmKernel(withoutHeapKernels, () => expectMatchesCpu(testCase)),
    );
  });

  it('rejects NCHW data with a CallosumError', async () => {
    const nchw = filterGradient(cases[0] as FilterGradientCase, 'NCHW');
    await expect(computeOn('wasm', nchw)).rejects.toSatisfy((error) =>
      isCallosumError(error, 'INVALID_ARGUMENT'),
    );
  });
});

/** Float32 values as their bit patterns, so that toEqual compares bits (and tells -0 from 0). */
function bitsOf(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}
