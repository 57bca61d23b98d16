/** A batch of MNIST-format images: `count` images of rows×cols pixels in [0, 1], and integer labels. */
export interface ImageBatch {
  readonly pixels: Float32Array;
  readonly labels: Int32Array;
  readonly count: number;
}

/** Builds a batch from raw MNIST bytes (pixels 0..255, labels 0..9), scaling pixels to [0, 1]. */
export function batchFromBytes(images: Uint8Array, labels: Uint8Array): ImageBatch {
  const pixels = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) pixels[i] = (images[i] as number) / 255;
  return { pixels, labels: Int32Array.from(labels), count: labels.length };
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
