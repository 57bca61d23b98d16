import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { _FusedMatMulAttrs, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { type NativeKernelsFor, nativeKernels } from '../native-kernels.js';
import { multiplyNatively } from './native-mat-mul.js';

interface FusedMatMulParams {
  inputs: { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
  backend: BackendWasm;
  attrs: _FusedMatMulAttrs;
}

/**
 * A dense layer's forward pass outside a gradient (evaluation, prediction), and its linear ones inside:
 * relu?(x · W + bias). Where core's native kernels are available, the untransposed product of single
 * matrices with a rank-1 bias and a linear or ReLU activation (the case wasm gives XNNPACK, bias and
 * clamp included) is theirs, with XNNPACK's bits; anything else stays on wasm's kernel.
 *
 * @param original the wasm _FusedMatMul config being replaced (its setupFunc is kept).
 * @param nativeKernelsFor core's native kernels, if any.
 */
export function createFusedMatMulKernel(
  original: KernelConfig,
  nativeKernelsFor: NativeKernelsFor = nativeKernels,
): KernelConfig {
  function fusedMatMul(params: FusedMatMulParams): TensorInfo {
    const { inputs, backend, attrs } = params;
    const { a, b, bias } = inputs;
    const { transposeA, transposeB, activation } = attrs;
    const nativeCase =
      !transposeA &&
      !transposeB &&
      (activation === 'linear' || activation === 'relu') &&
      (bias === undefined || bias.shape.length === 1);
    const native = nativeCase
      ? multiplyNatively(nativeKernelsFor(), backend, {
          a,
          b,
          transposeA,
          transposeB,
          relu: activation === 'relu',
          ...(bias === undefined ? {} : { bias }),
        })
      : undefined;
    return native ?? (original.kernelFunc(params as unknown as Parameters<KernelFunc>[0]) as TensorInfo);
  }

  return { ...original, kernelFunc: fusedMatMul as unknown as KernelFunc };
}
