import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  backend_util,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { CallosumError, ErrorCodes } from '../../errors.js';
import type { FilterGradientOperands } from '../../wasm/kernels.js';
import { type NativeKernelsFor, nativeKernels } from '../native-kernels.js';
import { type HeapKernelsFor, heapKernelsFor, plainHeap } from './heap-kernels.js';
import { fillTransposedPatches } from './transposed-patches.js';

/**
 * Cap on the temporary patch matrix (4 Mi float32 = 16 MiB): wasm memory never shrinks once grown, so
 * larger layers are processed a band of filter taps at a time instead of growing the heap for good.
 */
const MAX_PATCH_MATRIX_ELEMENTS = 1 << 22;

interface Conv2DBackpropFilterParams {
  inputs: { x: TensorInfo; dy: TensorInfo };
  backend: BackendWasm;
  attrs: Conv2DBackpropFilterAttrs;
}

/**
 * The filter gradient of a 2-D convolution, which tfjs-backend-wasm 4.22 does not implement at all (so any
 * CNN fails to train on it).
 *
 * Where core's native kernels are available it is theirs (native/mat-mul.cc: dW = patchesᵀ · dy with the
 * patches gathered while packing, about twice as fast as the WebAssembly kernel below, with its bits).
 *
 * Otherwise, on the backend's heap it runs assembly/conv2d-backprop-filter.ts, which accumulates x × dy per filter
 * tap directly, with three neighbouring filter columns sharing each dy vector: 2.1 ms per training step
 * for the 28×28×1 → 32×3×3 layer at batch 128 (2.2–4.3 ms on a busy machine), against 15–18 ms by the
 * patch matrix below, which spends them on XNNPACK packing the 11 MB dy.
 *
 * Where core's kernels cannot use the backend's heap (see heap-kernels.ts), it is computed as
 * dW[taps, outC] = patchesᵀ[taps, pixels] · dy[pixels, outC], with taps = fh·fw·inC and
 * pixels = batch·outH·outW. The patches are written already transposed so that the product has batch 1
 * and no transpose: the only case in which wasm's BatchMatMul uses XNNPACK rather than its naive loop
 * (at batch 64, 7 ms in training against 51 ms delegating to wasm's Conv3DBackpropFilterV2 with depth 1
 * and 23 ms for a plain JS loop).
 *
 * @param batchMatMul wasm's own BatchMatMul kernel function (untransposed calls only).
 * @param kernelsFor core's kernels on a backend's heap (a parameter so that tests can take them away).
 * @param nativeKernelsFor core's native kernels, if any (likewise).
 */
export function createConv2DBackpropFilterKernel(
  batchMatMul: KernelFunc,
  kernelsFor: HeapKernelsFor = heapKernelsFor,
  nativeKernelsFor: NativeKernelsFor = nativeKernels,
): KernelConfig {
  function conv2DBackpropFilter({ inputs, backend, attrs }: Conv2DBackpropFilterParams): TensorInfo {
    const { x, dy } = inputs;
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs;
    if (dataFormat !== 'NHWC') {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `Conv2DBackpropFilter on wasm supports only NHWC data, got dataFormat '${dataFormat}'`,
      );
    }
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `Conv2DBackpropFilter on wasm needs float32 x and dy, got ${x.dtype} and ${dy.dtype}`,
      );
    }
    const info = backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filterShape,
      strides,
      1,
      pad,
      dimRoundingMode,
    );
    const dW = backend.makeOutput([...filterShape], 'float32');
    const native = nativeKernelsFor();
    const heap = plainHeap(backend);
    const kernels = kernelsFor(backend);
    // The native kernel trusts dy's shape to be the convolution's output, which a direct call may not give.
    const dyFits = dy.shape.every((size, axis) => size === info.outShape[axis]) && dy.shape.length === 4;
    // Both kernels take the tensors' byte offsets and the geometry in this order.
    const operands: FilterGradientOperands = [
      backend.getMemoryOffset(x.dataId),
      backend.getMemoryOffset(dy.dataId),
      backend.getMemoryOffset(dW.dataId),
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
      info.padInfo.top,
      info.padInfo.left,
    ];
    if (native !== undefined && heap !== undefined && dyFits) {
      native.conv2dBackpropFilter(heap, ...operands);
    } else if (kernels === undefined) {
      filterGradientByPatches(x, dy, dW, info, backend, batchMatMul);
    } else {
      kernels.conv2dBackpropFilter(...operands);
    }
    return dW;
  }

  return {
    kernelName: Conv2DBackpropFilter,
    backendName: 'wasm',
    kernelFunc: conv2DBackpropFilter as unknown as KernelFunc,
  };
}

/** dW (allocated, filled here) as the product of the transposed patch matrix and dy, in bands of taps. */
function filterGradientByPatches(
  x: TensorInfo,
  dy: TensorInfo,
  dW: TensorInfo,
  info: backend_util.Conv2DInfo,
  backend: BackendWasm,
  batchMatMul: KernelFunc,
): void {
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const pixels = info.batchSize * info.outHeight * info.outWidth;
  const tapsPerBand = Math.max(1, Math.floor(MAX_PATCH_MATRIX_ELEMENTS / pixels));
  const dyAsMatrix: TensorInfo = {
    dataId: dy.dataId,
    shape: [1, pixels, info.outChannels],
    dtype: 'float32',
  };
  for (let firstTap = 0; firstTap < taps; firstTap += tapsPerBand) {
    const bandTaps = Math.min(tapsPerBand, taps - firstTap);
    const patches = backend.makeOutput([1, bandTaps, pixels], 'float32');
    // Heap views are taken only after allocating: growing the wasm memory detaches earlier views.
    fillTransposedPatches(
      backend.typedArrayFromHeap(x) as Float32Array,
      info,
      firstTap,
      backend.typedArrayFromHeap(patches) as Float32Array,
    );
    const band = batchMatMul({
      inputs: { a: patches, b: dyAsMatrix },
      backend,
      attrs: { transposeA: false, transposeB: false },
    }) as TensorInfo;
    backend.typedArrayFromHeap(dW).set(backend.typedArrayFromHeap(band), firstTap * info.outChannels);
    backend.disposeData(patches.dataId);
    backend.disposeData(band.dataId);
  }
}
