import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  type KernelConfig,
  type KernelFunc,
  type SumAttrs,
  type TensorInfo,
  util,
} from '@tensorflow/tfjs-core';
import { type HeapKernelsFor, heapKernelsFor } from './heap-kernels.js';

interface SumParams {
  inputs: { x: TensorInfo };
  backend: BackendWasm;
  attrs: SumAttrs;
}

/**
 * Replaces wasm's Sum where it is slow: a sum over the leading axes of a float32 tensor, which is how
 * tfjs computes a bias gradient (dy of [batch, height, width, channels] summed to [channels]). wasm
 * transposes the reduced axes to the end first: 7.1 ms for the [64,26,26,32] conv output of a small CNN,
 * a seventh of its whole training step, against about 1.5 ms here, where the rows are added to the column
 * totals in one pass. The totals are float64, as on the cpu backend. Every other sum goes to wasm's kernel.
 *
 * On the backend's heap the pass is assembly/column-sums.ts, the same float64 operations in the same
 * order as sumRows below (so the same bits), two columns per f64x2: 0.4 ms instead of 1.6–2.0 for the
 * [128,26,26,32] conv output. sumRows remains where core's kernels cannot use the heap.
 *
 * @param original the wasm Sum config being replaced (its setupFunc is kept).
 * @param kernelsFor core's kernels on a backend's heap (a parameter so that tests can take them away).
 */
export function createSumKernel(
  original: KernelConfig,
  kernelsFor: HeapKernelsFor = heapKernelsFor,
): KernelConfig {
  const wasmSum = original.kernelFunc;
  function sum(params: SumParams): TensorInfo {
    const { inputs, backend, attrs } = params;
    const { x } = inputs;
    const axes = util.parseAxisParam(attrs.axis, x.shape);
    // Summing every axis (or none) needs no transpose in wasm either.
    if (
      x.dtype !== 'float32' ||
      axes.length === 0 ||
      axes.length === x.shape.length ||
      !areLeadingAxes(axes)
    ) {
      return wasmSum(params as unknown as Parameters<KernelFunc>[0]) as TensorInfo;
    }
    const rows = util.sizeFromShape(x.shape.slice(0, axes.length));
    const kept = x.shape.slice(axes.length);
    const outShape = attrs.keepDims ? [...axes.map(() => 1), ...kept] : kept;
    const columns = util.sizeFromShape(kept);
    const out = backend.makeOutput(outShape, 'float32');
    const kernels = columns > 0 ? kernelsFor(backend) : undefined;
    if (kernels !== undefined) {
      const float64Totals = backend.makeOutput([2 * columns], 'float32');
      kernels.columnSums(
        backend.getMemoryOffset(x.dataId),
        rows,
        columns,
        backend.getMemoryOffset(out.dataId),
        backend.getMemoryOffset(float64Totals.dataId),
      );
      backend.disposeData(float64Totals.dataId);
      return out;
    }
    // Heap views are taken only after allocating: growing the wasm memory detaches earlier views.
    sumRows(
      backend.typedArrayFromHeap(x) as Float32Array,
      rows,
      backend.typedArrayFromHeap(out) as Float32Array,
    );
    return out;
  }
  return { ...original, kernelFunc: sum as unknown as KernelFunc };
}

/** Whether the (normalised) axes are 0, 1, …, k−1 in some order. */
function areLeadingAxes(axes: readonly number[]): boolean {
  return [...axes].sort((a, b) => a - b).every((axis, index) => axis === index);
}

/**
 * `totals[c]` = Σ over r of `values[r · columns + c]`, columns being `totals.length`. Four rows at a
 * time are added to each float64 total (their float32 values add exactly in float64 unless their
 * magnitudes differ by more than 2^29), so the totals are loaded and stored a quarter as often.
 */
export function sumRows(values: Float32Array, rows: number, totals: Float32Array): void {
  const columns = totals.length;
  const sums = new Float64Array(columns);
  let row = 0;
  let offset = 0;
  for (; row + 3 < rows; row += 4, offset += 4 * columns) {
    const second = offset + columns;
    const third = second + columns;
    const fourth = third + columns;
    for (let column = 0; column < columns; column++) {
      sums[column] =
        (sums[column] as number) +
        ((values[offset + column] as number) +
          (values[second + column] as number) +
          ((values[third + column] as number) + (values[fourth + column] as number)));
    }
  }
  for (; row < rows; row++, offset += columns) {
    for (let column = 0; column < columns; column++) {
      sums[column] = (sums[column] as number) + (values[offset + column] as number);
    }
  }
  totals.set(sums);
}
