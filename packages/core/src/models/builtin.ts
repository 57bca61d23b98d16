import * as tfl from '@tensorflow/tfjs-layers';
import { seededInitializers } from './initializers.js';
import { isPositiveIntegerList, readModelOptions } from './options.js';
import { registerModel } from './registry.js';

/** Names of the models that ship with core. */
export const ModelNames = { CNN: 'cnn', MLP: 'mlp', LENET5: 'lenet5' } as const;

const MNIST_INPUT_SHAPE = [28, 28, 1];
const CLASS_COUNT = 10;

/**
 * The reference model: Conv2D(32, 3×3, relu) → MaxPool(2×2) → Flatten → Dense(128, relu) →
 * Dense(10, softmax); 693,962 parameters. It takes no options so that "cnn" always means exactly this.
 */
function buildCnn(given: Readonly<Record<string, unknown>>, { seed }: { seed: number }): tfl.LayersModel {
  readModelOptions(ModelNames.CNN, given, {}, {});
  return tfl.sequential({
    name: ModelNames.CNN,
    layers: [
      tfl.layers.conv2d({
        inputShape: MNIST_INPUT_SHAPE,
        filters: 32,
        kernelSize: 3,
        activation: 'relu',
        ...seededInitializers(seed, 0),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 128, activation: 'relu', ...seededInitializers(seed, 1) }),
      tfl.layers.dense({ units: CLASS_COUNT, activation: 'softmax', ...seededInitializers(seed, 2) }),
    ],
  });
}

/** A fully connected network; `hidden` lists the hidden layer widths (default [256, 128]). */
function buildMlp(given: Readonly<Record<string, unknown>>, { seed }: { seed: number }): tfl.LayersModel {
  const { hidden } = readModelOptions(
    ModelNames.MLP,
    given,
    { hidden: [256, 128] as number[] },
    { hidden: isPositiveIntegerList },
  );
  return tfl.sequential({
    name: ModelNames.MLP,
    layers: [
      tfl.layers.flatten({ inputShape: MNIST_INPUT_SHAPE }),
      ...hidden.map((units, index) =>
        tfl.layers.dense({ units, activation: 'relu', ...seededInitializers(seed, index) }),
      ),
      tfl.layers.dense({
        units: CLASS_COUNT,
        activation: 'softmax',
        ...seededInitializers(seed, hidden.length),
      }),
    ],
  });
}

/**
 * LeNet-5 adapted to 28×28 input as is usual for MNIST: the first convolution pads 'same' so the
 * classic 5×5 → 16 feature maps come out; max pooling and relu instead of the original subsampling and tanh.
 */
function buildLenet5(given: Readonly<Record<string, unknown>>, { seed }: { seed: number }): tfl.LayersModel {
  const { filters } = readModelOptions(
    ModelNames.LENET5,
    given,
    { filters: [6, 16] as number[] },
    { filters: (value) => isPositiveIntegerList(value) && (value as number[]).length === 2 },
  );
  const [firstFilters, secondFilters] = filters as [number, number];
  return tfl.sequential({
    name: ModelNames.LENET5,
    layers: [
      tfl.layers.conv2d({
        inputShape: MNIST_INPUT_SHAPE,
        filters: firstFilters,
        kernelSize: 5,
        padding: 'same',
        activation: 'relu',
        ...seededInitializers(seed, 0),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.conv2d({
        filters: secondFilters,
        kernelSize: 5,
        activation: 'relu',
        ...seededInitializers(seed, 1),
      }),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 120, activation: 'relu', ...seededInitializers(seed, 2) }),
      tfl.layers.dense({ units: 84, activation: 'relu', ...seededInitializers(seed, 3) }),
      tfl.layers.dense({ units: CLASS_COUNT, activation: 'softmax', ...seededInitializers(seed, 4) }),
    ],
  });
}

registerModel(ModelNames.CNN, buildCnn);
registerModel(ModelNames.MLP, buildMlp);
registerModel(ModelNames.LENET5, buildLenet5);
