/**
 * Dropout whose masks depend on the samples, not on the process. tfjs draws a Dropout mask from its own
 * random stream, so the same sample would be dropped differently on each worker and the weights would
 * depend on who computed what. Here each sample carries a 32-bit key (from the run's seed, the epoch
 * and its index in the training set), and the mask of element j of that sample in dropout layer l is
 * drawn from (key, l, j) alone: any worker, thread or micro-batch computes the same mask for it.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { mix32 } from '../data/random.js';
import { CallosumError, ErrorCodes } from '../errors.js';
import { everyLayer } from '../params/layout.js';

type Layer = LayersModel['layers'][number];
type Call = (inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }) => tf.Tensor | tf.Tensor[];

/** Layers that draw random numbers in training in ways Callosum cannot make per-sample. */
const UNSUPPORTED_RANDOM_LAYERS = ['GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'SpatialDropout1D'];

/** The keys of the batch being trained on, while computeGradients runs. */
let currentKeys: Uint32Array | undefined;

/** Runs a training pass whose dropout layers draw their masks from these sample keys. */
export function withSampleKeys<T>(keys: Uint32Array | undefined, pass: () => T): T {
  currentKeys = keys;
  try {
    return pass();
  } finally {
    currentKeys = undefined;
  }
}

/** A sample's key: what its dropout masks are drawn from in one epoch of one run. */
export function sampleKey(seed: number, epoch: number, index: number): number {
  return mix32(mix32(mix32(seed >>> 0) ^ epoch) ^ mix32(index >>> 0));
}

/** Makes every Dropout layer of the model draw per-sample masks; refuses layers that cannot. */
export function seedDropoutLayers(model: LayersModel): void {
  let dropoutIndex = 0;
  for (const layer of everyLayer(model)) {
    const className = layer.getClassName();
    if (UNSUPPORTED_RANDOM_LAYERS.includes(className)) {
      throw new CallosumError(
        ErrorCodes.TASK_INVALID,
        `layer ${layer.name} (${className}) draws random numbers in training, which would differ between workers; Callosum supports Dropout`,
      );
    }
    if (className === 'Dropout') {
      const noiseShape = (layer as unknown as { noiseShape?: (number | null)[] }).noiseShape;
      if (noiseShape !== undefined && noiseShape !== null && noiseShape[0] != null) {
        throw new CallosumError(
          ErrorCodes.TASK_INVALID,
          `dropout layer ${layer.name} fixes its noiseShape's batch dimension (${noiseShape[0]}); masks are drawn per sample, so leave it null`,
        );
      }
      replaceCall(layer, dropoutIndex++);
    }
  }
}

function replaceCall(layer: Layer, layerIndex: number): void {
  const callable = layer as unknown as {
    call: Call;
    rate: number;
    getNoiseShape(input: tf.Tensor): number[] | undefined;
  };
  const original = callable.call.bind(layer);
  callable.call = (inputs, kwargs) => {
    const rate = callable.rate;
    if (kwargs?.training !== true || !(rate > 0 && rate < 1)) return original(inputs, kwargs);
    if (currentKeys === undefined) {
      throw new CallosumError(ErrorCodes.INTERNAL, `dropout layer ${layer.name} trained without sample keys`);
    }
    const input = Array.isArray(inputs) ? (inputs[0] as tf.Tensor) : inputs;
    const keys = currentKeys;
    return tf.tidy(() => {
      const maskShape = callable.getNoiseShape(input) ?? input.shape;
      const mask = tf.tensor(keepMask(keys, layerIndex, maskShape, rate), maskShape, 'float32');
      // (x / keep probability) × mask: the scaling of tfjs's dropout, in this order (docs/protocol.md).
      return tf.mul(tf.div(input, 1 - rate), mask);
    });
  };
}

/** 1 where an element is kept (its uniform draw is at least `rate`), 0 where it is dropped. */
function keepMask(
  keys: Uint32Array,
  layerIndex: number,
  shape: readonly number[],
  rate: number,
): Float32Array {
  const [samples, ...rest] = shape as [number, ...number[]];
  if (samples !== keys.length) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `a dropout mask for ${samples} samples, with keys for ${keys.length}`,
    );
  }
  const perSample = rest.reduce((product, dim) => product * dim, 1);
  const mask = new Float32Array(samples * perSample);
  const layerKey = mix32(layerIndex + 0x9e3779b9);
  for (let sample = 0; sample < samples; sample++) {
    const base = mix32((keys[sample] as number) ^ layerKey);
    for (let j = 0; j < perSample; j++) {
      const uniform = mix32(base ^ mix32(j)) / 2 ** 32;
      mask[sample * perSample + j] = uniform >= rate ? 1 : 0;
    }
  }
  return mask;
}
