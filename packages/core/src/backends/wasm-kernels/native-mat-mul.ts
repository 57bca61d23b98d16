import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type TensorInfo, util } from '@tensorflow/tfjs-core';
import type { NativeKernels } from '../native-kernels.js';
import { plainHeap } from './heap-kernels.js';

export interface NativeProduct {
  a: TensorInfo;
  b: TensorInfo;
  transposeA: boolean;
  transposeB: boolean;
  /** Added to every row before the products (the accumulators start from it, as in XNNPACK). */
  bias?: TensorInfo;
  relu: boolean;
}

/**
 * relu?(bias + op(a) · op(b)) for two float32 single matrices (leading dimensions all 1), computed by
 * core's native matMul on the backend's heap: the bits of wasm's XNNPACK product, whose accumulators it
 * mirrors (see native/mat-mul.h), with transposed operands read in place instead of copied.
 *
 * Undefined where the native kernel cannot take the product: no native kernels, a batch of matrices
 * (wasm multiplies those in a loop of its own, whose rounding differs), another dtype, a bias that is not
 * one value per column, an empty operand, or a heap that is not a plain ArrayBuffer (the threaded build's is shared).
 */
export function multiplyNatively(
  kernels: NativeKernels | undefined,
  backend: BackendWasm,
  { a, b, transposeA, transposeB, bias, relu }: NativeProduct,
): TensorInfo | undefined {
  if (kernels === undefined || !isSingleMatrix(a) || !isSingleMatrix(b)) return undefined;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  const [aRows, aColumns] = a.shape.slice(-2) as [number, number];
  const [bRows, bColumns] = b.shape.slice(-2) as [number, number];
  const rows = transposeA ? aColumns : aRows;
  const inner = transposeA ? aRows : aColumns;
  const columns = transposeB ? bRows : bColumns;
  if ((transposeB ? bColumns : bRows) !== inner || rows * columns * inner === 0) return undefined;
  if (bias !== undefined && (bias.dtype !== 'float32' || !isRowOf(bias, columns))) return undefined;
  if (plainHeap(backend) === undefined) return undefined;

  const leadingOnes = new Array<number>(Math.max(a.shape.length, b.shape.length) - 2).fill(1);
  const out = backend.makeOutput([...leadingOnes, rows, columns], 'float32');
  // Read the heap after makeOutput, which may have grown it (a grown memory has a new buffer).
  kernels.matMul(
    plainHeap(backend) as ArrayBuffer,
    backend.getMemoryOffset(a.dataId),
    transposeA ? 1 : aColumns,
    transposeA ? aColumns : 1,
    backend.getMemoryOffset(b.dataId),
    transposeB ? 1 : bColumns,
    transposeB ? bColumns : 1,
    backend.getMemoryOffset(out.dataId),
    bias === undefined ? -1 : backend.getMemoryOffset(bias.dataId),
    rows,
    columns,
    inner,
    relu,
  );
  return out;
}

/** A tensor of rank ≥ 2 whose leading (batch) dimensions hold a single matrix. */
export function isSingleMatrix(tensor: TensorInfo): boolean {
  return tensor.shape.length >= 2 && util.sizeFromShape(tensor.shape.slice(0, -2)) === 1;
}

/** A tensor holding one value per column: shape [columns], [1, columns], … */
function isRowOf(tensor: TensorInfo, columns: number): boolean {
  return tensor.shape.at(-1) === columns && util.sizeFromShape(tensor.shape) === columns;
}
