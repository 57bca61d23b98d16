import * as tfl from '@tensorflow/tfjs-layers';

/**
 * Seeded initializers for the n-th weighted layer. Each layer gets its own seed derived from the model
 * seed, so two processes building the same spec with the same seed get bit-identical weights.
 */
export function seededInitializers(modelSeed: number, layerIndex: number) {
  const seed = (modelSeed * 1000003 + layerIndex * 7919) % 2147483647;
  return {
    kernelInitializer: tfl.initializers.glorotUniform({ seed }),
    biasInitializer: tfl.initializers.zeros(),
  };
}
