import { backend_util, type DepthwiseConv2dNativeBackpropFilterAttrs } from '@tensorflow/tfjs-core';
import { CallosumError, ErrorCodes } from '../../errors.js';

/** The attributes of both depthwise gradient kernels, without the shape each is told to produce. */
export type DepthwiseConvAttrs = Omit<DepthwiseConv2dNativeBackpropFilterAttrs, 'filterShape'>;

/**
 * Which input pixels, filter taps and output pixels of a depthwise convolution meet: y[b, yR, yC, d·m + k]
 * is the sum over taps (wR, wC) of x[b, xR, xC, d] · w[wR, wC, d, k], where xR = yR·strideH + wR·dilationH
 * − padTop (and likewise for columns), m the channel multiplier. Both gradients walk these links.
 */
export interface DepthwiseGeometry {
  batch: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  channelMultiplier: number;
  outHeight: number;
  outWidth: number;
  filterWidth: number;
  /** rowLinks[xR]: the (filter row, output row) pairs that read input row xR, flattened as [wR, yR, …]. */
  rowLinks: number[][];
  /** colLinks[xC]: the (filter column, output column) pairs that read input column xC, flattened. */
  colLinks: number[][];
}

/**
 * The geometry of the depthwise convolution of x (NHWC) by a filter [fh, fw, inChannels, multiplier] into
 * dy, as tfjs computes it (`computeConv2DInfo` with depthwise = true: strides, 'same', 'valid', numeric or
 * explicit padding, dimRoundingMode, dilations). The kernels' attributes carry no dataFormat: tfjs gives
 * them NHWC shapes only, and shapes that do not fit together as NHWC are refused here.
 */
export function depthwiseGeometry(
  kernelName: string,
  xShape: readonly number[],
  filterShape: readonly number[],
  dyShape: readonly number[],
  attrs: DepthwiseConvAttrs,
): DepthwiseGeometry {
  const refuse = (why: string) =>
    new CallosumError(ErrorCodes.INVALID_ARGUMENT, `${kernelName} on wasm: ${why}`);
  if (xShape.length !== 4 || filterShape.length !== 4 || dyShape.length !== 4) {
    throw refuse(
      `needs an NHWC input, a filter and dy of rank 4, got shapes [${xShape}], [${filterShape}] and [${dyShape}]`,
    );
  }
  if (xShape[3] !== filterShape[2]) {
    throw refuse(
      `the input's channels (last dimension of [${xShape}]) are not the filter's in-channels ` +
        `(${filterShape[2]}); only NHWC data is supported`,
    );
  }
  const info = backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  if (info.outShape.some((size, axis) => size !== dyShape[axis])) {
    throw refuse(`dy has shape [${dyShape}], but the convolution's output has shape [${info.outShape}]`);
  }
  return {
    batch: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    channelMultiplier: info.outChannels / info.inChannels,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    filterWidth: info.filterWidth,
    rowLinks: axisLinks(
      info.inHeight,
      info.outHeight,
      info.filterHeight,
      info.strideHeight,
      info.dilationHeight,
      info.padInfo.top,
    ),
    colLinks: axisLinks(
      info.inWidth,
      info.outWidth,
      info.filterWidth,
      info.strideWidth,
      info.dilationWidth,
      info.padInfo.left,
    ),
  };
}

/** Along one axis, for each input position, the (tap, output position) pairs that read it. */
function axisLinks(
  inSize: number,
  outSize: number,
  filterSize: number,
  stride: number,
  dilation: number,
  padBefore: number,
): number[][] {
  const links = Array.from({ length: inSize }, (): number[] => []);
  for (let tap = 0; tap < filterSize; tap++) {
    for (let out = 0; out < outSize; out++) {
      const at = out * stride + tap * dilation - padBefore;
      if (at >= 0 && at < inSize) links[at]?.push(tap, out);
    }
  }
  return links;
}
