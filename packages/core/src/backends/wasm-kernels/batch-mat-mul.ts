import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  type BatchMatMulAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
  util,
} from '@tensorflow/tfjs-core';
import { type NativeKernelsFor, nativeKernels } from '../native-kernels.js';
import { isSingleMatrix, multiplyNatively } from './native-mat-mul.js';

interface BatchMatMulParams {
  inputs: { a: TensorInfo; b: TensorInfo };
  backend: BackendWasm;
  attrs: BatchMatMulAttrs;
}

/**
 * Where core's native kernels are available (native-mat-mul.ts), a product of single matrices is theirs:
 * the same bits as the XNNPACK routes below, about four times as fast, transposes read in place.
 *
 * Otherwise: wasm's BatchMatMul hands a product to XNNPACK only when neither operand is transposed and both have a
 * batch of 1; otherwise it runs a naive C++ loop. Backprop through a dense layer asks for exactly the
 * transposed products: [64,5408]·[5408,128] measured 3 ms untransposed but 37 ms as xᵀ·dy (transposeA)
 * and 35 ms as dy·Wᵀ (transposeB). So transposed operands are first copied with wasm's Transpose kernel
 * and the product is taken untransposed: 3.5 ms for xᵀ·dy.
 *
 * Every route costs passes over the data: each transposed copy is one, and XNNPACK packs its right-hand
 * operand on every call (it caches the packing per tensor, but training creates new tensors every step),
 * which costs about as much. A·B can also be computed as (Bᵀ·Aᵀ)ᵀ, which packs A instead of B; for
 * dy[64,128]·W[5408,128]ᵀ that moves a quarter of the data and takes 3 ms instead of 6. Products with a
 * real batch stay on the original kernel, which cannot use XNNPACK for them anyway.
 *
 * @param original the wasm BatchMatMul config being replaced (its setupFunc is kept).
 * @param transpose wasm's own Transpose kernel function.
 * @param nativeKernelsFor core's native kernels, if any.
 */
export function createBatchMatMulKernel(
  original: KernelConfig,
  transpose: KernelFunc,
  nativeKernelsFor: NativeKernelsFor = nativeKernels,
): KernelConfig {
  function batchMatMul(params: BatchMatMulParams): TensorInfo {
    const { inputs, backend, attrs } = params;
    const { a, b } = inputs;
    const { transposeA, transposeB } = attrs;
    const native = multiplyNatively(nativeKernelsFor(), backend, {
      a,
      b,
      transposeA,
      transposeB,
      relu: false,
    });
    if (native !== undefined) {
      return native;
    }
    if ((!transposeA && !transposeB) || !isSingleMatrix(a) || !isSingleMatrix(b)) {
      return original.kernelFunc(params as unknown as Parameters<KernelFunc>[0]) as TensorInfo;
    }

    const temporaries: TensorInfo[] = [];
    const transposed = (matrix: TensorInfo): TensorInfo => {
      const copy = transpose({ inputs: { x: matrix }, backend, attrs: { perm: swapLastTwoAxes(matrix) } });
      temporaries.push(copy as TensorInfo);
      return copy as TensorInfo;
    };
    const untransposedProduct = (left: TensorInfo, right: TensorInfo): TensorInfo =>
      original.kernelFunc({
        inputs: { a: left, b: right },
        backend,
        attrs: { transposeA: false, transposeB: false },
      }) as TensorInfo;

    try {
      if (swappingMovesLessData(a, b, transposeA, transposeB)) {
        const productTransposed = untransposedProduct(
          transposeB ? b : transposed(b),
          transposeA ? a : transposed(a),
        );
        temporaries.push(productTransposed);
        return transpose({
          inputs: { x: productTransposed },
          backend,
          attrs: { perm: swapLastTwoAxes(productTransposed) },
        }) as TensorInfo;
      }
      return untransposedProduct(transposeA ? transposed(a) : a, transposeB ? transposed(b) : b);
    } finally {
      for (const temporary of temporaries) {
        backend.disposeData(temporary.dataId);
      }
    }
  }

  return { ...original, kernelFunc: batchMatMul as unknown as KernelFunc };
}

/**
 * Whether (Bᵀ·Aᵀ)ᵀ moves fewer elements than A·B, counting one pass per transposed copy and one for
 * XNNPACK's packing of the right-hand operand.
 */
function swappingMovesLessData(
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): boolean {
  const sizeA = util.sizeFromShape(a.shape);
  const sizeB = util.sizeFromShape(b.shape);
  const rows = a.shape[a.shape.length - (transposeA ? 1 : 2)] as number;
  const columns = b.shape[b.shape.length - (transposeB ? 2 : 1)] as number;
  const direct = (transposeA ? sizeA : 0) + (transposeB ? sizeB : 0) + sizeB;
  const swapped = (transposeB ? 0 : sizeB) + (transposeA ? 0 : sizeA) + sizeA + rows * columns;
  return swapped < direct;
}

function swapLastTwoAxes(tensor: TensorInfo): number[] {
  const rank = tensor.shape.length;
  const perm = Array.from({ length: rank }, (_, axis) => axis);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}
