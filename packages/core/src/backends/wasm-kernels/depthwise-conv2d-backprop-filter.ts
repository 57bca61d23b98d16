import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  DepthwiseConv2dNativeBackpropFilter,
  type DepthwiseConv2dNativeBackpropFilterAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
  util,
} from '@tensorflow/tfjs-core';
import { depthwiseGeometry } from './depthwise-conv2d-geometry.js';

interface DepthwiseConv2dBackpropFilterParams {
  inputs: { x: TensorInfo; dy: TensorInfo };
  backend: BackendWasm;
  attrs: DepthwiseConv2dNativeBackpropFilterAttrs;
}

/**
 * The filter gradient of a depthwise convolution, which tfjs-backend-wasm 4.22 does not implement: every
 * DepthwiseConv2D and SeparableConv2D layer needs it to train. dW[wR, wC, d, k] = the sum over the
 * batch and the output pixels of x[b, xR, xC, d] · dy[b, yR, yC, d·m + k] for the input pixel each tap
 * reads (depthwise-conv2d-geometry.ts), accumulated in float64 and rounded to float32 once, as the cpu
 * backend does (in another order). A loop in JavaScript over the backend's heap: depthwise filters are
 * small, and each input pixel's channels are contiguous with its dy pixel's and its filter tap's.
 */
export function createDepthwiseConv2dBackpropFilterKernel(): KernelConfig {
  function depthwiseConv2dBackpropFilter({
    inputs,
    backend,
    attrs,
  }: DepthwiseConv2dBackpropFilterParams): TensorInfo {
    const { x, dy } = inputs;
    const { filterShape } = attrs;
    const geometry = depthwiseGeometry(
      DepthwiseConv2dNativeBackpropFilter,
      x.shape,
      filterShape,
      dy.shape,
      attrs,
    );
    const { inHeight, inWidth, inChannels, channelMultiplier, outHeight, outWidth, filterWidth } = geometry;
    const outChannels = inChannels * channelMultiplier;
    const sums = new Float64Array(util.sizeFromShape(filterShape));
    const out = backend.makeOutput([...filterShape], 'float32');
    const xValues = backend.typedArrayFromHeap(x);
    const dyValues = backend.typedArrayFromHeap(dy);
    for (let b = 0; b < geometry.batch; b++) {
      for (let xR = 0; xR < inHeight; xR++) {
        const rows = geometry.rowLinks[xR] as number[];
        for (let xC = 0; xC < inWidth; xC++) {
          const cols = geometry.colLinks[xC] as number[];
          const xAt = ((b * inHeight + xR) * inWidth + xC) * inChannels;
          for (let r = 0; r < rows.length; r += 2) {
            const wR = rows[r] as number;
            const yR = rows[r + 1] as number;
            for (let c = 0; c < cols.length; c += 2) {
              const tapAt = (wR * filterWidth + (cols[c] as number)) * outChannels;
              const dyAt = ((b * outHeight + yR) * outWidth + (cols[c + 1] as number)) * outChannels;
              for (let d = 0; d < inChannels; d++) {
                const xValue = xValues[xAt + d] as number;
                for (let at = d * channelMultiplier, end = at + channelMultiplier; at < end; at++) {
                  sums[tapAt + at] = (sums[tapAt + at] as number) + xValue * (dyValues[dyAt + at] as number);
                }
              }
            }
          }
        }
      }
    }
    backend.typedArrayFromHeap(out).set(sums);
    return out;
  }

  return {
    kernelName: DepthwiseConv2dNativeBackpropFilter,
    backendName: 'wasm',
    kernelFunc: depthwiseConv2dBackpropFilter as unknown as KernelFunc,
  };
}
