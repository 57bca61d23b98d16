import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
  UnsortedSegmentSum,
  type UnsortedSegmentSumAttrs,
  util,
} from '@tensorflow/tfjs-core';

interface UnsortedSegmentSumParams {
  inputs: { x: TensorInfo; segmentIds: TensorInfo };
  backend: BackendWasm;
  attrs: UnsortedSegmentSumAttrs;
}

/**
 * Sums x's slices by segment, which tfjs-backend-wasm 4.22 does not implement: it is the gradient of
 * Gather, so every Embedding layer needs it to train. out[s, …] = the sum of x[i, …] over the positions i
 * of `segmentIds` (of any rank; x's shape starts with it) that hold s, added in position order, each
 * addition rounded to x's dtype; ids outside [0, numSegments) add nothing. A loop in JavaScript over the
 * backend's heap: the data are the gradient rows of the tokens of one batch.
 */
export function createUnsortedSegmentSumKernel(): KernelConfig {
  function unsortedSegmentSum({ inputs, backend, attrs }: UnsortedSegmentSumParams): TensorInfo {
    const { x, segmentIds } = inputs;
    const { numSegments } = attrs;
    const positions = util.sizeFromShape(segmentIds.shape);
    const sliceShape = x.shape.slice(segmentIds.shape.length);
    const sliceSize = util.sizeFromShape(sliceShape);
    const out = backend.makeOutput([numSegments, ...sliceShape], x.dtype);
    const values = backend.typedArrayFromHeap(x);
    const ids = backend.typedArrayFromHeap(segmentIds);
    const sums = backend.typedArrayFromHeap(out);
    sums.fill(0);
    for (let position = 0; position < positions; position++) {
      const segment = ids[position] as number;
      if (segment < 0 || segment >= numSegments) continue;
      const from = position * sliceSize;
      const to = segment * sliceSize;
      for (let offset = 0; offset < sliceSize; offset++) {
        sums[to + offset] = (sums[to + offset] as number) + (values[from + offset] as number);
      }
    }
    return out;
  }

  return {
    kernelName: UnsortedSegmentSum,
    backendName: 'wasm',
    kernelFunc: unsortedSegmentSum as unknown as KernelFunc,
  };
}
