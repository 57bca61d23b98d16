import { CallosumError, ErrorCodes } from '../errors.js';

/** A batch of MNIST-format images: `count` images of rows×cols pixels in [0, 1], and integer labels. */
export interface ImageBatch {
  readonly pixels: Float32Array;
  readonly labels: Int32Array;
  readonly count: number;
}

/**
 * Builds a batch from raw MNIST bytes (pixels 0..255, labels 0..9), scaling pixels to [0, 1]. With
 * `buffers` (at least as long as the batch needs; a step's batch is at most the batch size) the batch
 * is written into views of them instead of new arrays, so a loop that reuses them allocates nothing.
 */
export function batchFromBytes(
  images: Uint8Array,
  labels: Uint8Array,
  buffers?: { readonly pixels: Float32Array; readonly labels: Int32Array },
): ImageBatch {
  if (
    buffers !== undefined &&
    (buffers.pixels.length < images.length || buffers.labels.length < labels.length)
  ) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `batch buffers hold ${buffers.pixels.length} pixels and ${buffers.labels.length} labels, ` +
        `the batch needs ${images.length} and ${labels.length}`,
    );
  }
  const pixels = buffers?.pixels.subarray(0, images.length) ?? new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) pixels[i] = (images[i] as number) / 255;
  const labelValues = buffers?.labels.subarray(0, labels.length) ?? new Int32Array(labels.length);
  labelValues.set(labels);
  return { pixels, labels: labelValues, count: labels.length };
}

/** Samples [start, end) of `batch`, as views (no copy). */
export function sliceImageBatch(batch: ImageBatch, start: number, end: number): ImageBatch {
  const pixelsPerSample = batch.count === 0 ? 0 : batch.pixels.length / batch.count;
  return {
    pixels: batch.pixels.subarray(start * pixelsPerSample, end * pixelsPerSample),
    labels: batch.labels.subarray(start, end),
    count: end - start,
  };
}
