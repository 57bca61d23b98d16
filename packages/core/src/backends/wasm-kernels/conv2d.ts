import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  backend_util,
  type Conv2DAttrs,
  type FusedConv2DAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { type NativeKernels, type NativeKernelsFor, nativeKernels } from '../native-kernels.js';
import { plainHeap } from './heap-kernels.js';

interface Conv2DParams {
  inputs: { x: TensorInfo; filter: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
  backend: BackendWasm;
  attrs: Conv2DAttrs & Partial<Pick<FusedConv2DAttrs, 'activation'>>;
}

/**
 * A 2-D convolution (Conv2D) and its fused form with a bias and an activation (FusedConv2D: a conv layer
 * outside a gradient). Where core's native kernels are available, an NHWC float32 convolution with no
 * activation or a ReLU is theirs (convolveNatively); anything else stays on wasm's kernel.
 *
 * @param original the wasm config being replaced, Conv2D or FusedConv2D (its setupFunc is kept).
 * @param nativeKernelsFor core's native kernels, if any.
 */
export function createConv2DKernel(
  original: KernelConfig,
  nativeKernelsFor: NativeKernelsFor = nativeKernels,
): KernelConfig {
  function conv2d(params: Conv2DParams): TensorInfo {
    const { inputs, backend, attrs } = params;
    const activation = attrs.activation ?? 'linear';
    const native =
      activation === 'linear' || activation === 'relu'
        ? convolveNatively(
            nativeKernelsFor(),
            backend,
            inputs.x,
            inputs.filter,
            attrs,
            inputs.bias,
            activation === 'relu',
          )
        : undefined;
    return native ?? (original.kernelFunc(params as unknown as Parameters<KernelFunc>[0]) as TensorInfo);
  }

  return { ...original, kernelFunc: conv2d as unknown as KernelFunc };
}

/**
 * relu?(bias + x ⊛ filter) by core's native conv2d on the backend's heap: the patch matrix times the
 * filter, every output adding its products tap by tap (filter row, column, then input channel) from the
 * bias or +0 with the padding's zeros included, as XNNPACK's convolution does, so the same bits (see
 * native/mat-mul.h). Undefined where it cannot: no native kernels, NCHW data, another dtype, a filter whose
 * input channels are not x's, a bias that is not one value per output channel, an empty tensor, or a heap
 * that is not a plain ArrayBuffer.
 */
function convolveNatively(
  kernels: NativeKernels | undefined,
  backend: BackendWasm,
  x: TensorInfo,
  filter: TensorInfo,
  attrs: Conv2DAttrs,
  bias: TensorInfo | undefined,
  relu: boolean,
): TensorInfo | undefined {
  if (kernels === undefined || attrs.dataFormat !== 'NHWC') return undefined;
  if (x.dtype !== 'float32' || filter.dtype !== 'float32') return undefined;
  // The kernel trusts the shapes to describe the tensors: mismatched ones go to wasm's kernel to refuse.
  if (x.shape.length !== 4 || filter.shape.length !== 4 || filter.shape[2] !== x.shape[3]) return undefined;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  if (
    bias !== undefined &&
    (bias.dtype !== 'float32' || bias.shape.length !== 1 || bias.shape[0] !== info.outChannels)
  ) {
    return undefined;
  }
  if (info.outShape.some((size) => size === 0) || info.inChannels === 0) return undefined;
  if (plainHeap(backend) === undefined) return undefined;

  const out = backend.makeOutput(info.outShape, 'float32');
  // Read the heap after makeOutput, which may have grown it (a grown memory has a new buffer).
  kernels.conv2d(
    plainHeap(backend) as ArrayBuffer,
    backend.getMemoryOffset(x.dataId),
    backend.getMemoryOffset(filter.dataId),
    backend.getMemoryOffset(out.dataId),
    bias === undefined ? -1 : backend.getMemoryOffset(bias.dataId),
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.outChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    info.padInfo.top,
    info.padInfo.left,
    relu,
  );
  return out;
}
