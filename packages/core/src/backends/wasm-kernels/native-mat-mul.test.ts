import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { nativeKernels, nativeKernelsStatus } from '../native-kernels.js';
import { createBatchMatMulKernel } from './batch-mat-mul.js';
import { createFusedMatMulKernel } from './fused-mat-mul.js';
import { plainHeap } from './heap-kernels.js';
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

const native = nativeKernels();
const withoutNative = () => undefined;
/** The two products as they run where core's native kernels are not available. */
const batchMatMulWithoutNative = createBatchMatMulKernel(
  wasmKernelBeforeReplacement(tf.BatchMatMul) as tf.KernelConfig,
  (tf.getKernel(tf.Transpose, 'wasm') as tf.KernelConfig).kernelFunc,
  withoutNative,
);
const fusedMatMulWithoutNative = createFusedMatMulKernel(
  wasmKernelBeforeReplacement(tf._FusedMatMul) as tf.KernelConfig,
  withoutNative,
);

async function withoutNativeKernels<T>(run: () => Promise<T>): Promise<T> {
  return withWasmKernel(batchMatMulWithoutNative, () => withWasmKernel(fusedMatMulWithoutNative, run));
}

// Shapes on both sides of the kernel's blocks: 6-row and 32-column tiles, 192-row and 256-deep blocks.
const shapes = [
  { name: 'the dense layer forward', m: 128, k: 5408, n: 128 },
  { name: 'one row', m: 1, k: 9, n: 5 },
  { name: 'odd sizes', m: 7, k: 13, n: 33 },
  { name: 'one inner value', m: 5, k: 1, n: 6 },
  { name: 'more rows than a block', m: 200, k: 40, n: 31 },
  { name: 'deeper than a block', m: 9, k: 600, n: 70 },
  { name: 'a column', m: 300, k: 257, n: 1 },
  { name: 'one panel wide (packed in place)', m: 9, k: 300, n: 32 },
];
const transposes = [
  { transposeA: false, transposeB: false },
  { transposeA: true, transposeB: false },
  { transposeA: false, transposeB: true },
  { transposeA: true, transposeB: true },
];
const table = shapes.flatMap((shape) => transposes.map((t) => ({ ...shape, ...t })));

function product({ m, k, n, transposeA, transposeB }: (typeof table)[number]): () => tf.Tensor {
  const a = seededUniform(m * k, m + k);
  const b = seededUniform(k * n, k + n + 1);
  return () =>
    tf.matMul(
      tf.tensor(a, transposeA ? [k, m] : [m, k]),
      tf.tensor(b, transposeB ? [n, k] : [k, n]),
      transposeA,
      transposeB,
    );
}

describe.skipIf(native === undefined)(
  `BatchMatMul and _FusedMatMul on core's native kernels (${JSON.stringify(nativeKernelsStatus())})`,
  () => {
    it.each(table)(
      'give the bits of the WebAssembly route and the cpu backend within 1e-5 relative: $name, transposeA=$transposeA, transposeB=$transposeB',
      async (testCase) => {
        const compute = product(testCase);
        const withNative = await computeOn('wasm', compute);
        const withoutNative = await withoutNativeKernels(() => computeOn('wasm', compute));
        expect(withNative.shape).toEqual(withoutNative.shape);
        expect(differingBits(withNative.values, withoutNative.values)).toBe(0);

        const { cpu, maxAbsDifference } = await computeOnCpuAndWasm(compute);
        const scale = cpu.values.reduce((largest, value) => Math.max(largest, Math.abs(value)), 1);
        expect(maxAbsDifference / scale).toBeLessThan(1e-5);
      },
    );

    const fusedCases = [
      { name: 'bias and ReLU', bias: true, activation: 'relu' as const },
      { name: 'bias, linear', bias: true, activation: 'linear' as const },
      { name: 'ReLU, no bias', bias: false, activation: 'relu' as const },
      { name: 'bias and ELU (not native: wasm applies it)', bias: true, activation: 'elu' as const },
    ];
    it.each(fusedCases)(
      'fused with $name: the bits of the WebAssembly route',
      async ({ bias, activation }) => {
        for (const { m, k, n } of shapes) {
          const a = seededUniform(m * k, 5);
          const b = seededUniform(k * n, 6);
          const biasValues = seededUniform(n, 7);
          const compute = () =>
            tf.fused.matMul({
              a: tf.tensor(a, [m, k]),
              b: tf.tensor(b, [k, n]),
              activation,
              ...(bias ? { bias: tf.tensor(biasValues, [n]) } : {}),
            });
          const withNative = await computeOn('wasm', compute);
          const withoutNative = await withoutNativeKernels(() => computeOn('wasm', compute));
          expect(differingBits(withNative.values, withoutNative.values)).toBe(0);
          if (activation === 'relu') {
            expect(withNative.values.some((value) => value === 0)).toBe(true);
          }
        }
      },
    );

    it("trains and predicts with a dense network to the WebAssembly route's bits", async () => {
      const run = async () => {
        await tf.setBackend('wasm');
        return tf.tidy(() => {
          const model = tfl.sequential({
            layers: [
              tfl.layers.conv2d({
                inputShape: [12, 12, 1],
                filters: 4,
                kernelSize: 3,
                activation: 'relu',
                kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
              }),
              tfl.layers.maxPooling2d({ poolSize: 2 }),
              tfl.layers.flatten(),
              tfl.layers.dense({
                units: 64,
                activation: 'relu',
                kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
              }),
              tfl.layers.dense({
                units: 10,
                activation: 'softmax',
                kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
              }),
            ],
          });
          const x = tf.tensor(seededUniform(16 * 144, 8, 0, 1), [16, 12, 12, 1]);
          const y = tf.oneHot(
            tf.tensor1d(
              Array.from({ length: 16 }, (_, i) => i % 10),
              'int32',
            ),
            10,
          );
          const { grads } = tf.variableGrads(() =>
            tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor),
          );
          const prediction = model.predict(x) as tf.Tensor;
          return [prediction, ...Object.values(grads)].map((t) => Float32Array.from(t.dataSync()));
        });
      };
      const withNative = await run();
      const withoutNative = await withoutNativeKernels(run);
      expect(withNative).toHaveLength(7);
      expect(withNative.map((values, i) => differingBits(values, withoutNative[i] as Float32Array))).toEqual(
        withNative.map(() => 0),
      );
    });

    it('refuses an operand outside the heap and a wrong call, and writes nothing', async () => {
      await tf.setBackend('wasm');
      const backend = tf.backend() as BackendWasm;
      const heap = plainHeap(backend) as ArrayBuffer;
      const kernels = native as NonNullable<typeof native>;
      const beyond = heap.byteLength - 8;
      expect(() => kernels.matMul(heap, 0, 4, 1, 0, 4, 1, beyond, -1, 4, 4, 4, false)).toThrow(
        /matMul: an operand lies outside the heap/,
      );
      expect(() => kernels.matMul(heap, 2, 4, 1, 0, 4, 1, 64, -1, 4, 4, 4, false)).toThrow(
        /outside the heap/,
      );
      expect(() => kernels.matMul(heap, 0, 4, 1, 0, 4, 1, 64, -1, -4, 4, 4, false)).toThrow(
        /must not be negative/,
      );
      expect(() => (kernels.matMul as (...args: unknown[]) => void)(heap, 0)).toThrow(
        /expected 13 arguments, got 2/,
      );
      expect(() => kernels.matMul(heap, 0.5, 4, 1, 0, 4, 1, 64, -1, 4, 4, 4, false)).toThrow(
        /left must be an integer/,
      );
    });

    it('refuses sizes whose arithmetic would overflow, a stride of 0 under many rows, and allocates nothing for no output', async () => {
      await tf.setBackend('wasm');
      const backend = tf.backend() as BackendWasm;
      const heap = plainHeap(backend) as ArrayBuffer;
      const kernels = native as NonNullable<typeof native>;
      const elements = heap.byteLength / 4;
      // Each of these once wrapped its extent to a small number and then read or wrote far outside.
      expect(() => kernels.matMul(heap, 0, 0, 0, 0, 0, 0, 0, -1, 2 ** 33, 2 ** 31, 0, false)).toThrow(
        /rows is larger than the heap/,
      );
      expect(() => kernels.matMul(heap, 0, 4, 1, 0, 1, 1, 0, -1, elements / 2, 1, 1, false)).toThrow(
        /outside the heap/,
      );
      expect(() => kernels.matMul(heap, 0, 0, 1, 0, 1, 1, 0, -1, 1000, 1, 1, false)).toThrow(
        /outside the heap/,
      );
      // No rows: nothing is written, and no packing buffer of columns × inner is made.
      expect(kernels.matMul(heap, 0, 0, 0, 0, 0, 0, 0, -1, 0, heap.byteLength, 256, false)).toBeUndefined();
      const conv = (inHeight: number, inWidth: number, stride: number, dilation: number) =>
        kernels.conv2d(
          heap,
          0,
          0,
          0,
          -1,
          1,
          inHeight,
          inWidth,
          1,
          3,
          3,
          1,
          3,
          3,
          stride,
          stride,
          dilation,
          dilation,
          0,
          0,
          false,
        );
      expect(() => conv(heap.byteLength, heap.byteLength, 1, 1)).toThrow(/outside the heap/);
      expect(() => conv(8, 8, heap.byteLength, 1)).toThrow(/strides or dilations span more than the heap/);
      expect(() => conv(8, 8, 1, heap.byteLength)).toThrow(/strides or dilations span more than the heap/);
      expect(() =>
        kernels.conv2dBackpropFilter(heap, 0, 0, 0, 1, 8, 8, 1, 3, 3, 1, 3, 3, heap.byteLength, 1, 0, 0),
      ).toThrow(/strides span more than the heap/);
    });

    it('keeps NaN and infinities where the WebAssembly route does (NaN payloads aside)', async () => {
      const a = seededUniform(7 * 40, 21);
      const b = seededUniform(40 * 33, 22);
      a.set([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0], 40);
      b.set([Number.NaN, 3e38, -3e38], 100);
      const bias = seededUniform(33, 23);
      for (const activation of ['linear', 'relu'] as const) {
        const compute = () =>
          tf.fused.matMul({
            a: tf.tensor(a, [7, 40]),
            b: tf.tensor(b, [40, 33]),
            bias: tf.tensor(bias),
            activation,
          });
        const withNative = await computeOn('wasm', compute);
        const without = await withoutNativeKernels(() => computeOn('wasm', compute));
        // XNNPACK's product clamps NaN to 0 under a ReLU; without one, the NaN reach the output.
        expect(nanPositions(without.values).length > 0).toBe(activation === 'linear');
        expect(nanPositions(withNative.values)).toEqual(nanPositions(without.values));
        expect(differingBits(withoutNaN(withNative.values), withoutNaN(without.values))).toBe(0);
      }
    });
  },
);
