import type { backend_util } from '@tensorflow/tfjs-core';

/**
 * Writes rows of the transposed im2col matrix of an NHWC input: row `k` is one filter tap
 * (filterRow, filterCol, inChannel) in the filter's [fh, fw, inC] order, column `n` is one output pixel
 * (batch, outRow, outCol) in row-major order, and the entry is the input value that tap sees at that
 * pixel, or 0 where it falls into the padding. Rows `firstRow .. firstRow + target.length / columns`
 * are written, `columns` being batch·outHeight·outWidth, so every entry of `target` is set.
 */
export function fillTransposedPatches(
  x: Float32Array,
  info: backend_util.Conv2DInfo,
  firstRow: number,
  target: Float32Array,
): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, filterWidth } = info;
  const { strideHeight, strideWidth } = info;
  const { top: padTop, left: padLeft } = info.padInfo;
  const columns = batchSize * outHeight * outWidth;
  const rows = target.length / columns;
  const sourceStep = strideWidth * inChannels;

  for (let row = 0; row < rows; row++) {
    const tap = firstRow + row;
    const inChannel = tap % inChannels;
    const filterCol = Math.floor(tap / inChannels) % filterWidth;
    const filterRow = Math.floor(tap / (inChannels * filterWidth));
    // Output columns whose input column lies inside the image; the others read padding.
    const firstOutCol = clamp(Math.ceil((padLeft - filterCol) / strideWidth), 0, outWidth);
    const endOutCol = clamp(Math.ceil((inWidth + padLeft - filterCol) / strideWidth), firstOutCol, outWidth);

    let destination = row * columns;
    for (let batch = 0; batch < batchSize; batch++) {
      for (let outRow = 0; outRow < outHeight; outRow++, destination += outWidth) {
        const inRow = outRow * strideHeight - padTop + filterRow;
        if (inRow < 0 || inRow >= inHeight) {
          target.fill(0, destination, destination + outWidth);
          continue;
        }
        target.fill(0, destination, destination + firstOutCol);
        const firstInCol = firstOutCol * strideWidth - padLeft + filterCol;
        let source = ((batch * inHeight + inRow) * inWidth + firstInCol) * inChannels + inChannel;
        for (let outCol = firstOutCol; outCol < endOutCol; outCol++, source += sourceStep) {
          target[destination + outCol] = x[source] as number;
        }
        target.fill(0, destination + endOutCol, destination + outWidth);
      }
    }
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(value, min), max);
}
