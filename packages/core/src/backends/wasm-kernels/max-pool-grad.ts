import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  backend_util,
  type KernelConfig,
  type KernelFunc,
  type MaxPoolGradAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { type HeapKernelsFor, heapKernelsFor } from './heap-kernels.js';

interface MaxPoolGradParams {
  inputs: { dy: TensorInfo; input: TensorInfo };
  backend: BackendWasm;
  attrs: MaxPoolGradAttrs;
}

/**
 * Replaces wasm's MaxPoolGrad for two reasons. It is slow: 26 ms for the [64,26,26,32] 2×2/2 pool of a
 * small CNN, against 9 ms here in general and 6 ms on the exact 2×2 tiling path. And it disagrees with
 * the cpu backend: it routes a tie to the last maximal element rather than the first, and it seeds the
 * running maximum with FLT_MIN (the smallest positive float), so a window without a positive element,
 * such as a window of dead ReLUs, loses its gradient.
 * This kernel follows the cpu backend exactly: in each window, the first maximal element in row-major
 * order receives dy (NaN never counts as maximal); a window of only NaN or -Infinity receives nothing.
 *
 * The exact 2×2 tiling, the pooling after most conv layers, runs assembly/max-pool-grad.ts on the
 * backend's heap, four channels per f32x4 with lane masks for the comparisons: 2.0 ms for the
 * [128,26,26,32] pool against 8.3 ms in JavaScript. Where core's kernels cannot use the heap (see
 * heap-kernels.ts) the same rule runs in JavaScript, as does every other window shape.
 *
 * @param original the wasm MaxPoolGrad config being replaced (its setupFunc is kept).
 * @param kernelsFor core's kernels on a backend's heap (a parameter so that tests can take them away).
 */
export function createMaxPoolGradKernel(
  original: KernelConfig,
  kernelsFor: HeapKernelsFor = heapKernelsFor,
): KernelConfig {
  function maxPoolGrad({ inputs, backend, attrs }: MaxPoolGradParams): TensorInfo {
    const { dy, input } = inputs;
    const info = backend_util.computePool2DInfo(
      input.shape as [number, number, number, number],
      attrs.filterSize,
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
    );
    const dx = backend.makeOutput(input.shape, 'float32');
    const tiles = tilesExactly2x2(info);
    const float32 = input.dtype === 'float32' && dy.dtype === 'float32';
    const kernels = tiles && float32 ? kernelsFor(backend) : undefined;
    if (kernels !== undefined) {
      kernels.maxPoolGrad2x2(
        backend.getMemoryOffset(input.dataId),
        backend.getMemoryOffset(dy.dataId),
        backend.getMemoryOffset(dx.dataId),
        info.batchSize,
        info.outHeight,
        info.outWidth,
        info.inChannels,
      );
      return dx;
    }
    // Heap views are taken only after allocating: growing the wasm memory detaches earlier views.
    const dxValues = backend.typedArrayFromHeap(dx);
    const xValues = backend.typedArrayFromHeap(input);
    const dyValues = backend.typedArrayFromHeap(dy);
    if (tiles) {
      routeThrough2x2Tiles(xValues, dyValues, dxValues, info);
    } else {
      dxValues.fill(0);
      scatterToWindowMaxima(xValues, dyValues, dxValues, info);
    }
    return dx;
  }
  return { ...original, kernelFunc: maxPoolGrad as unknown as KernelFunc };
}

/** 2×2 windows with stride 2 and no padding that cover the input exactly, as after most conv layers. */
function tilesExactly2x2(info: backend_util.Conv2DInfo): boolean {
  return (
    info.effectiveFilterHeight === 2 &&
    info.effectiveFilterWidth === 2 &&
    info.strideHeight === 2 &&
    info.strideWidth === 2 &&
    info.padInfo.top === 0 &&
    info.padInfo.left === 0 &&
    info.outHeight * 2 === info.inHeight &&
    info.outWidth * 2 === info.inWidth
  );
}

/**
 * The same rule as scatterToWindowMaxima for exactly tiling 2×2 windows, where every dx element
 * belongs to one window: each is written once (dy at its window's first maximum, else 0), with no
 * zero-fill pass and no read-modify-write, and the comparisons are conditional moves rather than
 * branches, which ReLU outputs full of equal zeros would mispredict. A third less time on this model.
 */
function routeThrough2x2Tiles(
  x: backend_util.TypedArray,
  dy: backend_util.TypedArray,
  dx: backend_util.TypedArray,
  info: backend_util.Conv2DInfo,
): void {
  const { batchSize, inWidth, inChannels: channels, outHeight, outWidth } = info;
  const rowStride = inWidth * channels;
  let dyOffset = 0;
  for (let batch = 0; batch < batchSize; batch++) {
    for (let outRow = 0; outRow < outHeight; outRow++) {
      for (let outCol = 0; outCol < outWidth; outCol++, dyOffset += channels) {
        const topLeft = ((batch * outHeight * 2 + outRow * 2) * inWidth + outCol * 2) * channels;
        const topRight = topLeft + channels;
        const bottomLeft = topLeft + rowStride;
        const bottomRight = bottomLeft + channels;
        for (let channel = 0; channel < channels; channel++) {
          const a = x[topLeft + channel] as number;
          const b = x[topRight + channel] as number;
          const c = x[bottomLeft + channel] as number;
          const d = x[bottomRight + channel] as number;
          // `>` is false for NaN, so NaN is never the maximum, and -Infinity never beats the start.
          const aWins = a > Number.NEGATIVE_INFINITY;
          let max = aWins ? a : Number.NEGATIVE_INFINITY;
          let winner = aWins ? 0 : -1;
          const bWins = b > max;
          max = bWins ? b : max;
          winner = bWins ? 1 : winner;
          const cWins = c > max;
          max = cWins ? c : max;
          winner = cWins ? 2 : winner;
          winner = d > max ? 3 : winner;
          const gradient = dy[dyOffset + channel] as number;
          dx[topLeft + channel] = winner === 0 ? gradient : 0;
          dx[topRight + channel] = winner === 1 ? gradient : 0;
          dx[bottomLeft + channel] = winner === 2 ? gradient : 0;
          dx[bottomRight + channel] = winner === 3 ? gradient : 0;
        }
      }
    }
  }
}

/**
 * Adds each dy entry to the position of its window's maximum. Channels are innermost in NHWC, so one
 * pass over a window updates the running maximum of every channel with contiguous reads.
 */
function scatterToWindowMaxima(
  x: backend_util.TypedArray,
  dy: backend_util.TypedArray,
  dx: backend_util.TypedArray,
  info: backend_util.Conv2DInfo,
): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, effectiveFilterHeight, effectiveFilterWidth } = info;
  const { top: padTop, left: padLeft } = info.padInfo;
  const maxValues = new Float64Array(inChannels);
  const maxPositions = new Int32Array(inChannels);

  let dyOffset = 0;
  for (let batch = 0; batch < batchSize; batch++) {
    for (let outRow = 0; outRow < outHeight; outRow++) {
      const rowCorner = outRow * strideHeight - padTop;
      const firstRow = Math.max(0, rowCorner);
      const endRow = Math.min(inHeight, rowCorner + effectiveFilterHeight);
      for (let outCol = 0; outCol < outWidth; outCol++, dyOffset += inChannels) {
        const colCorner = outCol * strideWidth - padLeft;
        const firstCol = Math.max(0, colCorner);
        const endCol = Math.min(inWidth, colCorner + effectiveFilterWidth);
        maxValues.fill(Number.NEGATIVE_INFINITY);
        maxPositions.fill(-1);
        for (let row = firstRow; row < endRow; row++) {
          let position = ((batch * inHeight + row) * inWidth + firstCol) * inChannels;
          for (let col = firstCol; col < endCol; col++) {
            for (let channel = 0; channel < inChannels; channel++, position++) {
              const value = x[position] as number;
              if (value > (maxValues[channel] as number)) {
                maxValues[channel] = value;
                maxPositions[channel] = position;
              }
            }
          }
        }
        for (let channel = 0; channel < inChannels; channel++) {
          const position = maxPositions[channel] as number;
          if (position >= 0) {
            dx[position] = (dx[position] as number) + (dy[dyOffset + channel] as number);
          }
        }
      }
    }
  }
}
