import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  DepthwiseConv2dNativeBackpropInput,
  type DepthwiseConv2dNativeBackpropInputAttrs,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { depthwiseGeometry } from './depthwise-conv2d-geometry.js';

interface DepthwiseConv2dBackpropInputParams {
  inputs: { dy: TensorInfo; filter: TensorInfo };
  backend: BackendWasm;
  attrs: DepthwiseConv2dNativeBackpropInputAttrs;
}

/**
 * The input gradient of a depthwise convolution, which tfjs-backend-wasm 4.22 does not implement: any
 * trainable layer before a DepthwiseConv2D or SeparableConv2D layer needs it. dx[b, xR, xC, d] = the sum
 * over the taps that read that pixel (depthwise-conv2d-geometry.ts) and the multiplier's k of
 * dy[b, yR, yC, d·m + k] · w[wR, wC, d, k], accumulated in float64 and rounded to float32 once, as the
 * cpu backend does (in another order). A loop in JavaScript over the backend's heap, one input pixel at
 * a time: its channels are contiguous, as are its dy pixel's and its filter tap's.
 */
export function createDepthwiseConv2dBackpropInputKernel(): KernelConfig {
  function depthwiseConv2dBackpropInput({
    inputs,
    backend,
    attrs,
  }: DepthwiseConv2dBackpropInputParams): TensorInfo {
    const { dy, filter } = inputs;
    const { inputShape } = attrs;
    const geometry = depthwiseGeometry(
      DepthwiseConv2dNativeBackpropInput,
      inputShape,
      filter.shape,
      dy.shape,
      attrs,
    );
    const { inHeight, inWidth, inChannels, channelMultiplier, outHeight, outWidth, filterWidth } = geometry;
    const outChannels = inChannels * channelMultiplier;
    const pixel = new Float64Array(inChannels);
    const out = backend.makeOutput([...inputShape], 'float32');
    const dyValues = backend.typedArrayFromHeap(dy);
    const weights = backend.typedArrayFromHeap(filter);
    const dx = backend.typedArrayFromHeap(out);
    for (let b = 0; b < geometry.batch; b++) {
      for (let xR = 0; xR < inHeight; xR++) {
        const rows = geometry.rowLinks[xR] as number[];
        for (let xC = 0; xC < inWidth; xC++) {
          const cols = geometry.colLinks[xC] as number[];
          pixel.fill(0);
          for (let r = 0; r < rows.length; r += 2) {
            const wR = rows[r] as number;
            const yR = rows[r + 1] as number;
            for (let c = 0; c < cols.length; c += 2) {
              const tapAt = (wR * filterWidth + (cols[c] as number)) * outChannels;
              const dyAt = ((b * outHeight + yR) * outWidth + (cols[c + 1] as number)) * outChannels;
              for (let d = 0; d < inChannels; d++) {
                let sum = pixel[d] as number;
                for (let at = d * channelMultiplier, end = at + channelMultiplier; at < end; at++) {
                  sum += (dyValues[dyAt + at] as number) * (weights[tapAt + at] as number);
                }
                pixel[d] = sum;
              }
            }
          }
          dx.set(pixel, ((b * inHeight + xR) * inWidth + xC) * inChannels);
        }
      }
    }
    return out;
  }

  return {
    kernelName: DepthwiseConv2dNativeBackpropInput,
    backendName: 'wasm',
    kernelFunc: depthwiseConv2dBackpropInput as unknown as KernelFunc,
  };
}
