import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels, wasmKernelBeforeReplacement } from './index.js';
import { createSumKernel, sumRows } from './sum.js';
import { computeOn, computeOnCpuAndWasm, seededUniform, withWasmKernel } from './test-support.js';

registerWasmTrainingKernels();

/** The kernel as it runs where core's kernels cannot use the backend's heap: sumRows. */
const withoutHeapKernels = createSumKernel(
  wasmKernelBeforeReplacement(tf.Sum) as tf.KernelConfig,
  () => undefined,
);

interface SumCase {
  name: string;
  shape: number[];
  axis: number | number[];
  keepDims?: boolean;
  /**
   * Sums over leading axes take the replacement kernel, which adds in float64 like the cpu backend: the
   * float32 results agree exactly. The others stay on wasm's float32 kernel.
   */
  exact: boolean;
}

const cases: SumCase[] = [
  {
    name: 'conv bias gradient: [4,26,26,32] over 0,1,2',
    shape: [4, 26, 26, 32],
    axis: [0, 1, 2],
    exact: true,
  },
  { name: 'dense bias gradient: [64,10] over 0', shape: [64, 10], axis: 0, exact: true },
  { name: 'keepDims', shape: [3, 5, 7], axis: [0, 1], keepDims: true, exact: true },
  { name: 'leading axes out of order and negative', shape: [3, 4, 5], axis: [-2, 0], exact: true },
  {
    name: 'odd columns, rows not a multiple of four: [7,5,9] over 0,1',
    shape: [7, 5, 9],
    axis: [0, 1],
    exact: true,
  },
  { name: 'an inner axis (wasm kernel)', shape: [2, 3, 4], axis: 1, exact: false },
  { name: 'the last axis (wasm kernel)', shape: [6, 9], axis: -1, exact: false },
  { name: 'every axis (wasm kernel)', shape: [5, 6, 7], axis: [0, 1, 2], exact: false },
];

describe('Sum on wasm', () => {
  it.each(cases)('matches the cpu backend: $name', async ({ shape, axis, keepDims, exact }) => {
    const values = seededUniform(tf.util.sizeFromShape(shape), 11, -3, 3);
    const { cpu, wasm, maxAbsDifference } = await computeOnCpuAndWasm(() =>
      tf.sum(tf.tensor(values, shape), axis, keepDims),
    );
    expect(wasm.shape).toEqual(cpu.shape);
    if (exact) expect(wasm.values).toEqual(cpu.values);
    else expect(maxAbsDifference).toBeLessThanOrEqual(1e-4);
  });

  it('propagates NaN and Infinity to their column only, and sums an empty leading axis to zeros', async () => {
    const values = Float32Array.from([1, Number.NaN, 3, 4, 5, Number.POSITIVE_INFINITY, 7, 8, 9]);
    const { cpu, wasm } = await computeOnCpuAndWasm(() => tf.sum(tf.tensor(values, [3, 3]), 0));
    expect(Array.from(wasm.values)).toEqual([12, Number.NaN, Number.POSITIVE_INFINITY]);
    expect(wasm.values).toEqual(cpu.values);
    const empty = await computeOnCpuAndWasm(() => tf.sum(tf.zeros([0, 4]), 0));
    expect(Array.from(empty.wasm.values)).toEqual([0, 0, 0, 0]);
  });

  it('leaves integer sums to wasm (an int32 result)', async () => {
    await tf.setBackend('wasm');
    const total = tf.sum(tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32'), 0);
    expect(total.dtype).toBe('int32');
    expect(Array.from(total.dataSync())).toEqual([4, 6]);
    total.dispose();
  });

  it("gives the bits of sumRows, the path where core's kernels cannot use the heap", async () => {
    const shapes = [
      [128, 26, 26, 32],
      [7, 5, 9],
      [3, 1],
    ];
    for (const shape of shapes) {
      // Wide ranges, so that float64 totals differ from float32 ones and rounding shows.
      const values = seededUniform(tf.util.sizeFromShape(shape), 13, -1e3, 1e3);
      const axes = shape.slice(0, -1).map((_, axis) => axis);
      const sum = () => tf.sum(tf.tensor(values, shape), axes);
      const onHeap = await computeOn('wasm', sum);
      const inJavaScript = await withWasmKernel(withoutHeapKernels, () => computeOn('wasm', sum));
      expect(onHeap.values).toEqual(inJavaScript.values);
    }
  });

  it('sumRows adds rows into float64 column totals', () => {
    const totals = new Float32Array(2);
    // In float32, 1 + 1e-8 + … stays 1; in float64 a thousand of them add up.
    const values = new Float32Array(2002).map((_, i) => (i < 2 ? 1 : i % 2 === 0 ? 1e-8 : 2));
    sumRows(values, 1001, totals);
    expect(totals[0]).toBe(Math.fround(1 + 1000 * Math.fround(1e-8)));
    expect(totals[0]).not.toBe(1);
    expect(totals[1]).toBe(2001);
  });
});
