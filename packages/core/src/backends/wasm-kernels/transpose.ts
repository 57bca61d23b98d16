import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
  type TransposeAttrs,
  util,
} from '@tensorflow/tfjs-core';
import { type HeapKernelsFor, heapKernelsFor } from './heap-kernels.js';

interface TransposeParams {
  inputs: { x: TensorInfo };
  backend: BackendWasm;
  attrs: TransposeAttrs;
}

/**
 * Replaces wasm's Transpose where BatchMatMul (batch-mat-mul.ts) needs it, swapping the last two axes of
 * a float32 or int32 tensor: assembly/transpose.ts turns 4 × 4 tiles with lane shuffles on the backend's
 * heap, writing whole cache lines of the target. Alone, both take about 0.1 ms for the [128, 5408]
 * activation of the small CNN's dense layer; inside a training step, where it and the layer's input
 * gradient are transposed with cold caches, BatchMatMul's transposes took 4.4–6.6 ms per step with
 * wasm's kernel and 1.7–2.0 ms with this one (batch 128, two runs each on a busy machine). Every other
 * permutation and dtype, and any backend whose heap core's kernels cannot use, goes to wasm's kernel. A
 * copy either way, so the bits are the same.
 *
 * @param original the wasm Transpose config being replaced (its setupFunc is kept).
 * @param kernelsFor core's kernels on a backend's heap (a parameter so that tests can take them away).
 */
export function createTransposeKernel(
  original: KernelConfig,
  kernelsFor: HeapKernelsFor = heapKernelsFor,
): KernelConfig {
  const wasmTranspose = original.kernelFunc;
  function transpose(params: TransposeParams): TensorInfo {
    const { inputs, backend, attrs } = params;
    const { x } = inputs;
    const kernels =
      (x.dtype === 'float32' || x.dtype === 'int32') &&
      swapsLastTwoAxes(attrs.perm) &&
      util.sizeFromShape(x.shape) > 0
        ? kernelsFor(backend)
        : undefined;
    if (kernels === undefined) {
      return wasmTranspose(params as unknown as Parameters<KernelFunc>[0]) as TensorInfo;
    }
    const rank = x.shape.length;
    const rows = x.shape[rank - 2] as number;
    const columns = x.shape[rank - 1] as number;
    const out = backend.makeOutput([...x.shape.slice(0, -2), columns, rows], x.dtype);
    kernels.transposeMatrices(
      backend.getMemoryOffset(x.dataId),
      backend.getMemoryOffset(out.dataId),
      util.sizeFromShape(x.shape.slice(0, -2)),
      rows,
      columns,
    );
    return out;
  }
  return { ...original, kernelFunc: transpose as unknown as KernelFunc };
}

/** [0, 1, …, r−3, r−1, r−2]: a batch of matrices, each transposed. */
function swapsLastTwoAxes(perm: readonly number[]): boolean {
  const rank = perm.length;
  return (
    rank >= 2 &&
    perm[rank - 2] === rank - 1 &&
    perm[rank - 1] === rank - 2 &&
    perm.slice(0, -2).every((axis, index) => axis === index)
  );
}
