import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { nativeKernels } from '../native-kernels.js';
import { createConv2DKernel } from './conv2d.js';
import { registerWasmTrainingKernels, wasmKernelBeforeReplacement } from './index.js';
import {
  computeOn,
  computeOnCpuAndWasm,
  differingBits,
  nanPositions,
  seededUniform,
  withoutNaN,
  withWasmKernel,
} from './test-support.js';

registerWasmTrainingKernels();

/** The two kernels as they run where core's native kernels are not available. */
const withoutNative = () => undefined;
const conv2DWithoutNative = createConv2DKernel(
  wasmKernelBeforeReplacement(tf.Conv2D) as tf.KernelConfig,
  withoutNative,
);
const fusedConv2DWithoutNative = createConv2DKernel(
  wasmKernelBeforeReplacement(tf.FusedConv2D) as tf.KernelConfig,
  withoutNative,
);

interface ConvolutionCase {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | [[number, number], [number, number], [number, number], [number, number]];
  dilations?: [number, number];
}

const cases: ConvolutionCase[] = [
  {
    name: 'the reference CNN: 28×28×1 → 32, 3×3 valid',
    x: [16, 28, 28, 1],
    filter: [3, 3, 1, 32],
    strides: 1,
    pad: 'valid',
  },
  {
    name: 'batch 1, same padding, 3 → 5 channels',
    x: [1, 9, 7, 3],
    filter: [3, 3, 3, 5],
    strides: 1,
    pad: 'same',
  },
  {
    name: 'stride 2, odd sizes, 33 output channels',
    x: [2, 11, 13, 2],
    filter: [3, 2, 2, 33],
    strides: 2,
    pad: 'same',
  },
  {
    name: 'explicit padding, 70 output channels',
    x: [3, 6, 5, 4],
    filter: [2, 3, 4, 70],
    strides: [1, 2],
    pad: [
      [0, 0],
      [2, 1],
      [0, 3],
      [0, 0],
    ],
  },
  { name: 'dilation 2', x: [2, 10, 9, 3], filter: [3, 3, 3, 8], strides: 1, pad: 'same', dilations: [2, 2] },
  {
    name: '1×1 over 300 channels (inner blocks)',
    x: [2, 5, 4, 300],
    filter: [1, 1, 300, 40],
    strides: 1,
    pad: 'valid',
  },
  {
    name: '5×5 over 16 channels (400 taps)',
    x: [2, 9, 9, 16],
    filter: [5, 5, 16, 6],
    strides: 1,
    pad: 'valid',
  },
];

function convolution({ x, filter, strides, pad, dilations }: ConvolutionCase, fused?: tf.fused.Activation) {
  const xValues = seededUniform(tf.util.sizeFromShape(x), x[1] + x[3]);
  const filterValues = seededUniform(tf.util.sizeFromShape(filter), filter[3] + 2);
  const biasValues = seededUniform(filter[3], 9);
  return () => {
    const input = tf.tensor4d(xValues, x);
    const kernel = tf.tensor4d(filterValues, filter);
    return fused === undefined
      ? tf.conv2d(input, kernel, strides, pad, 'NHWC', dilations)
      : tf.fused.conv2d({
          x: input,
          filter: kernel,
          strides,
          pad,
          dilations: dilations ?? 1,
          bias: tf.tensor1d(biasValues),
          activation: fused,
        });
  };
}

async function withoutNativeKernels<T>(run: () => Promise<T>): Promise<T> {
  return withWasmKernel(conv2DWithoutNative, () => withWasmKernel(fusedConv2DWithoutNative, run));
}

describe.skipIf(nativeKernels() === undefined)("Conv2D and FusedConv2D on core's native kernels", () => {
  it.each(cases)(
    'give the bits of wasm’s XNNPACK convolution and the cpu backend within 1e-5 relative: $name',
    async (testCase) => {
      const compute = convolution(testCase);
      const withNative = await computeOn('wasm', compute);
      const without = await withoutNativeKernels(() => computeOn('wasm', compute));
      expect(withNative.shape).toEqual(without.shape);
      expect(differingBits(withNative.values, without.values)).toBe(0);

      const { cpu, maxAbsDifference } = await computeOnCpuAndWasm(compute);
      expect(
        maxAbsDifference / cpu.values.reduce((largest, value) => Math.max(largest, Math.abs(value)), 1),
      ).toBeLessThan(1e-5);
    },
  );

  it.each(['relu', 'linear', 'elu'] as const)(
    'fused with a bias and %s: the bits of wasm’s kernel',
    async (activation) => {
      for (const testCase of cases) {
        const compute = convolution(testCase, activation);
        const withNative = await computeOn('wasm', compute);
        const without = await withoutNativeKernels(() => computeOn('wasm', compute));
        expect(differingBits(withNative.values, without.values)).toBe(0);
      }
    },
  );

  it('keeps NaN and infinities where wasm’s convolution does, with and without a fused ReLU (NaN payloads aside)', async () => {
    const x = seededUniform(2 * 9 * 9 * 3, 31);
    x.set([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0], 50);
    const filter = seededUniform(3 * 3 * 3 * 32, 32);
    const bias = seededUniform(32, 33);
    for (const activation of ['linear', 'relu'] as const) {
      const compute = () =>
        tf.fused.conv2d({
          x: tf.tensor4d(x, [2, 9, 9, 3]),
          filter: tf.tensor4d(filter, [3, 3, 3, 32]),
          strides: 1,
          pad: 'same',
          bias: tf.tensor1d(bias),
          activation,
        });
      const withNative = await computeOn('wasm', compute);
      const without = await withoutNativeKernels(() => computeOn('wasm', compute));
      expect(nanPositions(without.values).length).toBeGreaterThan(0);
      expect(nanPositions(withNative.values)).toEqual(nanPositions(without.values));
      expect(differingBits(withoutNaN(withNative.values), withoutNaN(without.values))).toBe(0);
    }
  });
});
