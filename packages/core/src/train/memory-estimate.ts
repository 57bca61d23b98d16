import type { LayersModel } from '@tensorflow/tfjs-layers';

/** The most memory a WebAssembly backend can address: wasm32 has 32-bit pointers. */
export const WASM_MEMORY_BYTES = 4 * 1024 ** 3;

const FLOAT_BYTES = 4;
/**
 * A backward pass keeps each activation and computes its gradient, and the backend holds temporaries of
 * the same sizes besides. Measured on wasm with the cnn (2026-12-06): a 6,500-sample shard computed, a
 * 13,000-sample one ran out of memory; with 5 the estimate allows about 5,400, on the safe side.
 */
const TENSORS_PER_ACTIVATION = 5;

function product(dims: readonly (number | null)[]): number {
  return dims.reduce<number>((total, dim) => total * (dim ?? 1), 1);
}

/** The shape of one sample (tfjs shapes start with the batch dimension; a list of shapes: the first). */
function sampleShape(shape: unknown): (number | null)[] {
  const first = Array.isArray(shape) && Array.isArray(shape[0]) ? shape[0] : shape;
  return Array.isArray(first) ? (first as (number | null)[]).slice(1) : [];
}

/**
 * An estimate of the memory one sample takes while its gradient is computed: every layer's output and
 * its gradient, plus, for a convolution, the patch matrix its kernels multiply (kernel area × input
 * channels per output position). The weights, shared by the whole batch, are not included.
 */
export function activationBytesPerSample(model: LayersModel): number {
  let previous = sampleShape(model.inputs[0]?.shape ?? []);
  let floats = product(previous);
  for (const layer of model.layers) {
    const output = sampleShape(layer.outputShape);
    floats += product(output);
    const config = layer.getConfig() as { kernelSize?: number | number[]; filters?: number };
    if (config.kernelSize !== undefined && config.filters !== undefined) {
      const kernel = Array.isArray(config.kernelSize) ? product(config.kernelSize) : config.kernelSize ** 2;
      const inputChannels = previous[previous.length - 1] ?? 1;
      floats += (product(output) / config.filters) * kernel * inputChannels;
    }
    previous = output;
  }
  return floats * FLOAT_BYTES * TENSORS_PER_ACTIVATION;
}

/** The most samples whose gradient fits in `memoryBytes` at once, besides the model's weights (×4: weights, gradient, optimizer copies). */
export function largestFittingSamples(model: LayersModel, memoryBytes: number): number {
  const weightBytes = model.countParams() * FLOAT_BYTES * 4;
  return Math.max(0, Math.floor((memoryBytes - weightBytes) / activationBytesPerSample(model)));
}
