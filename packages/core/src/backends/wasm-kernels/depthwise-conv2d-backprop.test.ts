import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from './index.js';
import {
  computeOn,
  computeOnCpuAndWasm,
  maxAbsDifference,
  seededIntegers,
  seededUniform,
} from './test-support.js';

registerWasmTrainingKernels();

type Shape4 = [number, number, number, number];

interface DepthwiseCase {
  name: string;
  /** NHWC. */
  xShape: Shape4;
  /** [height, width] of the filter. */
  filterSize: [number, number];
  multiplier: number;
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

const cases: DepthwiseCase[] = [
  {
    name: 'batch 1, 5×5×1, 3×3, multiplier 1, same',
    xShape: [1, 5, 5, 1],
    filterSize: [3, 3],
    multiplier: 1,
    strides: 1,
    pad: 'same',
  },
  {
    name: 'odd 9×7×3, 3×3, multiplier 2, stride 2, same',
    xShape: [3, 9, 7, 3],
    filterSize: [3, 3],
    multiplier: 2,
    strides: 2,
    pad: 'same',
  },
  {
    name: '8×8×4, non-square 2×3, multiplier 3, valid',
    xShape: [2, 8, 8, 4],
    filterSize: [2, 3],
    multiplier: 3,
    strides: 1,
    pad: 'valid',
  },
  {
    name: 'odd 11×10×2, 5×5, stride 2, valid',
    xShape: [2, 11, 10, 2],
    filterSize: [5, 5],
    multiplier: 1,
    strides: 2,
    pad: 'valid',
  },
  {
    name: 'explicit padding, strides [2, 1], 3×2, multiplier 2',
    xShape: [2, 7, 6, 3],
    filterSize: [3, 2],
    multiplier: 2,
    strides: [2, 1],
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
  },
  {
    name: 'pad 1, stride 2, dimRoundingMode ceil',
    xShape: [2, 8, 9, 2],
    filterSize: [3, 3],
    multiplier: 2,
    strides: 2,
    pad: 1,
    dimRoundingMode: 'ceil',
  },
  {
    name: 'a MobileNet-like layer: batch 16, 16×16×8, 3×3, same',
    xShape: [16, 16, 16, 8],
    filterSize: [3, 3],
    multiplier: 1,
    strides: 1,
    pad: 'same',
  },
];

/** The case's filter shape, and dy's for the filter `filterShape` (the case's unless given) at `dilations`. */
function geometry(
  testCase: DepthwiseCase,
  dilations = 1,
  filterShape: Shape4 = [...testCase.filterSize, testCase.xShape[3], testCase.multiplier],
): { filterShape: Shape4; dyShape: Shape4 } {
  const { xShape, strides, pad, dimRoundingMode } = testCase;
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    dilations,
    pad,
    dimRoundingMode,
    true,
  );
  return { filterShape, dyShape: info.outShape };
}

function attrsOf(testCase: DepthwiseCase, dilations: number): Record<string, unknown> {
  const { strides, pad, dimRoundingMode } = testCase;
  return { strides, pad, dimRoundingMode, dilations };
}

function runKernel(name: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown>): tf.Tensor {
  return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/** dW of the case, from seeded x and dy; `filterShape` as the kernel is told it (a spread filter's). */
function filterGradient(
  testCase: DepthwiseCase,
  dilations = 1,
  filterShape = geometry(testCase).filterShape,
) {
  const { dyShape } = geometry(testCase, dilations, filterShape);
  const x = seededUniform(tf.util.sizeFromShape(testCase.xShape), 51);
  const dy = seededUniform(tf.util.sizeFromShape(dyShape), 52);
  return () =>
    runKernel(
      tf.DepthwiseConv2dNativeBackpropFilter,
      { x: tf.tensor(x, testCase.xShape), dy: tf.tensor(dy, dyShape) },
      { ...attrsOf(testCase, dilations), filterShape },
    );
}

/** The case's filter, seeded. */
function seededFilter(testCase: DepthwiseCase): { values: Float32Array; shape: Shape4 } {
  const { filterShape } = geometry(testCase);
  return { values: seededUniform(tf.util.sizeFromShape(filterShape), 53), shape: filterShape };
}

/** dx of the case, from seeded dy and the case's seeded filter unless `filter` is given (a spread one). */
function inputGradient(testCase: DepthwiseCase, dilations = 1, filter = seededFilter(testCase)) {
  const { dyShape } = geometry(testCase, dilations, filter.shape);
  const dy = seededUniform(tf.util.sizeFromShape(dyShape), 52);
  return () =>
    runKernel(
      tf.DepthwiseConv2dNativeBackpropInput,
      { dy: tf.tensor(dy, dyShape), filter: tf.tensor(filter.values, filter.shape) },
      { ...attrsOf(testCase, dilations), inputShape: testCase.xShape },
    );
}

// Both backends add the products in float64 (JavaScript numbers) and round the sum to float32 once, but
// in different orders, so a result may differ in its last float32 bit: the largest sums here are about
// 52, where float32 values are 3.8e-6 apart. (Measured: no difference at all.)
const TOLERANCE = 1e-5;

describe('DepthwiseConv2dNativeBackpropFilter on wasm (missing from tfjs-backend-wasm)', () => {
  it.each(cases)('matches the cpu backend: $name', async (testCase) => {
    const { cpu, wasm } = await computeOnCpuAndWasm(filterGradient(testCase));
    expect(wasm.shape).toEqual(geometry(testCase).filterShape);
    expect(maxAbsDifference(wasm.values, cpu.values)).toBeLessThanOrEqual(TOLERANCE);
    expect(wasm.values.some((value) => value !== 0)).toBe(true);
  });
});

describe('DepthwiseConv2dNativeBackpropInput on wasm (missing from tfjs-backend-wasm)', () => {
  it.each(cases)('matches the cpu backend: $name', async (testCase) => {
    const { cpu, wasm } = await computeOnCpuAndWasm(inputGradient(testCase));
    expect(wasm.shape).toEqual(testCase.xShape);
    expect(maxAbsDifference(wasm.values, cpu.values)).toBeLessThanOrEqual(TOLERANCE);
    expect(wasm.values.some((value) => value !== 0)).toBe(true);
  });
});

// tfjs's depthwiseConv2d gradient refuses dilations above 1, and the cpu kernels ignore them (they read
// the filter as if undilated), so a dilated kernel is checked against cpu's undilated kernel on the
// "spread" filter: the filter with dilation − 1 zero rows and columns between its taps.
const dilatedCases: DepthwiseCase[] = [
  {
    name: '9×8×3, 3×3, multiplier 2, same',
    xShape: [2, 9, 8, 3],
    filterSize: [3, 3],
    multiplier: 2,
    strides: 1,
    pad: 'same',
  },
  {
    name: '10×7×2, 2×3, valid',
    xShape: [1, 10, 7, 2],
    filterSize: [2, 3],
    multiplier: 1,
    strides: 1,
    pad: 'valid',
  },
];

function spreadShape([height, width, channels, multiplier]: Shape4, dilation: number): Shape4 {
  return [(height - 1) * dilation + 1, (width - 1) * dilation + 1, channels, multiplier];
}

describe('the depthwise gradients on wasm with dilation 2', () => {
  it.each(dilatedCases)('give the filter gradient of the spread filter: $name', async (testCase) => {
    const { filterShape } = geometry(testCase);
    const spread = spreadShape(filterShape, 2);
    const cpuSpread = filterGradient(testCase, 1, spread);
    const cpu = await computeOn('cpu', () =>
      tf.stridedSlice(cpuSpread(), [0, 0, 0, 0], spread, [2, 2, 1, 1]),
    );
    const wasm = await computeOn('wasm', filterGradient(testCase, 2));
    expect(wasm.shape).toEqual(filterShape);
    expect(maxAbsDifference(wasm.values, cpu.values)).toBeLessThanOrEqual(TOLERANCE);
  });

  it.each(dilatedCases)('give the input gradient of the spread filter: $name', async (testCase) => {
    const { values, shape: filterShape } = seededFilter(testCase);
    const spread = spreadShape(filterShape, 2);
    const spreadValues = new Float32Array(tf.util.sizeFromShape(spread));
    const [height, width, channels, multiplier] = filterShape;
    const tapSize = channels * multiplier;
    for (let row = 0; row < height; row++) {
      for (let col = 0; col < width; col++) {
        const from = (row * width + col) * tapSize;
        spreadValues.set(values.subarray(from, from + tapSize), (2 * row * spread[1] + 2 * col) * tapSize);
      }
    }
    const cpu = await computeOn('cpu', inputGradient(testCase, 1, { values: spreadValues, shape: spread }));
    const wasm = await computeOn('wasm', inputGradient(testCase, 2, { values, shape: filterShape }));
    expect(wasm.shape).toEqual(testCase.xShape);
    expect(maxAbsDifference(wasm.values, cpu.values)).toBeLessThanOrEqual(TOLERANCE);
  });
});

describe('the depthwise gradients on wasm with shapes that are not NHWC', () => {
  it('are refused with INVALID_ARGUMENT', async () => {
    await tf.setBackend('wasm');
    // An NCHW input [2, 3, 6, 5] whose 3 channels are the filter's.
    const x = tf.zeros([2, 3, 6, 5]);
    const dy = tf.zeros([2, 3, 6, 3]);
    const attrs = { strides: 1, pad: 'same', dilations: 1, filterShape: [3, 3, 3, 1] };
    expect(() => runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, attrs)).toThrow(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(
          /DepthwiseConv2dNativeBackpropFilter on wasm: the input's channels .* only NHWC data is supported/,
        ),
      }),
    );
    tf.dispose([x, dy]);
  });
});

describe('a model with DepthwiseConv2D and SeparableConv2D layers on wasm', () => {
  const BATCH = 4;
  const CLASSES = 5;
  const images = seededUniform(BATCH * 10 * 9 * 2, 61, 0, 1);
  const labels = seededIntegers(BATCH, 62, 0, CLASSES - 1);

  /** Each trainable weight's gradient for one batch, in the model's order. */
  async function gradientsOn(backend: 'cpu' | 'wasm'): Promise<Float32Array[]> {
    await tf.setBackend(backend);
    const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });
    // The conv2d before the depthwise layers needs their input gradients, not only their filters'.
    const model = tfl.sequential({
      layers: [
        tfl.layers.conv2d({
          inputShape: [10, 9, 2],
          filters: 3,
          kernelSize: 2,
          activation: 'relu',
          kernelInitializer: seeded(63),
        }),
        tfl.layers.depthwiseConv2d({
          kernelSize: 3,
          depthMultiplier: 2,
          padding: 'same',
          activation: 'relu',
          depthwiseInitializer: seeded(64),
        }),
        tfl.layers.separableConv2d({
          filters: 4,
          kernelSize: [3, 2],
          strides: 2,
          depthwiseInitializer: seeded(65),
          pointwiseInitializer: seeded(66),
        }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: CLASSES, kernelInitializer: seeded(67) }),
      ],
    });
    const variables = model.trainableWeights.map((weight) => weight.read() as tf.Variable);
    const x = tf.tensor4d(images, [BATCH, 10, 9, 2]);
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES);
    const { grads } = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      variables,
    );
    const gradients = variables.map((variable) => Float32Array.from(grads[variable.name]!.dataSync()));
    tf.dispose([x, y, ...Object.values(grads)]);
    model.dispose();
    return gradients;
  }

  it('gets the gradient of every weight, as on the cpu backend', async () => {
    // The forward passes differ too (XNNPACK against cpu's loops), all in float32: gradients up to 0.3.
    const cpu = await gradientsOn('cpu');
    const wasm = await gradientsOn('wasm');
    // conv2d kernel and bias, depthwise kernel and bias, separable depthwise, pointwise and bias, dense.
    expect(wasm).toHaveLength(9);
    cpu.forEach((expected, i) => {
      expect(maxAbsDifference(wasm[i] as Float32Array, expected), `weight ${i}`).toBeLessThanOrEqual(1e-5);
      expect(expected.some((value) => value !== 0)).toBe(true);
    });
  });
});
