import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type KernelConfig, type KernelFunc, type TensorInfo, util } from '@tensorflow/tfjs-core';
import { type HeapKernelsFor, heapKernelsFor } from './heap-kernels.js';

interface AddParams {
  inputs: { a: TensorInfo; b: TensorInfo };
  backend: BackendWasm;
}

/**
 * Replaces wasm's Add where a layer adds its bias: a float32 `a` plus a float32 `b` whose shape (leading
 * 1s aside) is a proper suffix of a's, such as [128,26,26,32] + [32]: assembly/bias-add.ts adds the row
 * to each of a's rows with f32x4 on the backend's heap. Alone, both take about 0.5 ms for that conv
 * output; inside a training step wasm's kernel took 1.5–3.6 ms per step and this one 0.8–1.2 (three
 * interleaved runs of bench:kernels). One rounding per element either way, so the bits are the same.
 * Every other Add, and any backend whose heap core's kernels cannot use, goes to wasm's kernel.
 *
 * @param original the wasm Add config being replaced (its setupFunc is kept).
 * @param kernelsFor core's kernels on a backend's heap (a parameter so that tests can take them away).
 */
export function createBiasAddKernel(
  original: KernelConfig,
  kernelsFor: HeapKernelsFor = heapKernelsFor,
): KernelConfig {
  const wasmAdd = original.kernelFunc;
  function add(params: AddParams): TensorInfo {
    const { inputs, backend } = params;
    const { a, b } = inputs;
    const kernels =
      a.dtype === 'float32' && b.dtype === 'float32' && isRowOf(b.shape, a.shape)
        ? kernelsFor(backend)
        : undefined;
    if (kernels === undefined) {
      return wasmAdd(params as unknown as Parameters<KernelFunc>[0]) as TensorInfo;
    }
    const columns = util.sizeFromShape(b.shape);
    const out = backend.makeOutput([...a.shape], 'float32');
    kernels.biasAdd(
      backend.getMemoryOffset(a.dataId),
      backend.getMemoryOffset(b.dataId),
      backend.getMemoryOffset(out.dataId),
      util.sizeFromShape(a.shape) / columns,
      columns,
    );
    return out;
  }
  return { ...original, kernelFunc: add as unknown as KernelFunc };
}

/** Whether `row`, without its leading 1s, is a non-empty proper suffix of a non-empty `shape`. */
function isRowOf(row: readonly number[], shape: readonly number[]): boolean {
  const firstDimension = row.findIndex((size) => size !== 1);
  const suffix = firstDimension === -1 ? [] : row.slice(firstDimension);
  return (
    row.length <= shape.length &&
    suffix.length > 0 &&
    suffix.length < shape.length &&
    util.sizeFromShape([...shape]) > 0 &&
    suffix.every((size, index) => size === shape[shape.length - suffix.length + index])
  );
}
