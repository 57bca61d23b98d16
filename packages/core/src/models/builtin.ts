import * as tfl from '@tensorflow/tfjs-layers';
import { seededInitializers } from './initializers.js';
import { isPositiveIntegerList, readModelOptions } from './options.js';
import { registerModel } from './registry.js';

/** Names of the models that ship with core. */
export const ModelNames = { CNN: 'cnn', MLP: 'mlp', LENET5: 'lenet5' } as const;

const MNIST_INPUT_SHAPE = [28, 28, 1];
const CLASS_COUNT = 10;

/** A relu convolution whose weights start from the seeded initializers of weighted layer `index`. */
function reluConv2d(args: Parameters<typeof tfl.layers.conv2d>[0], seed: number, index: number) {
  return tfl.layers.conv2d({ ...args, activation: 'relu', ...seededInitializers(seed, index) });
}

/**
 * The head every model ends with: relu dense layers of these widths, then the softmax over the classes.
 * Its weighted layers are numbered from `firstIndex` on, for their seeded initializers.
 */
function denseClassifier(widths: readonly number[], seed: number, firstIndex: number) {
  return [
    ...widths.map((units, offset) =>
      tfl.layers.dense({ units, activation: 'relu', ...seededInitializers(seed, firstIndex + offset) }),
    ),
    tfl.layers.dense({
      units: CLASS_COUNT,
      activation: 'softmax',
      ...seededInitializers(seed, firstIndex + widths.length),
    }),
  ];
}

/**
 * The reference model: Conv2D(32, 3×3, relu) → MaxPool(2×2) → Flatten → Dense(128, relu) →
 * Dense(10, softmax); 693,962 parameters. It takes no options so that "cnn" always means exactly this.
 */
function buildCnn(given: Readonly<Record<string, unknown>>, { seed }: { seed: number }): tfl.LayersModel {
  readModelOptions(ModelNames.CNN, given, {}, {});
  return tfl.sequential({
    name: ModelNames.CNN,
    layers: [
      reluConv2d({ inputShape: MNIST_INPUT_SHAPE, filters: 32, kernelSize: 3 }, seed, 0),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      ...denseClassifier([128], seed, 1),
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
    layers: [tfl.layers.flatten({ inputShape: MNIST_INPUT_SHAPE }), ...denseClassifier(hidden, seed, 0)],
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
      reluConv2d(
        { inputShape: MNIST_INPUT_SHAPE, filters: firstFilters, kernelSize: 5, padding: 'same' },
        seed,
        0,
      ),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      reluConv2d({ filters: secondFilters, kernelSize: 5 }, seed, 1),
      tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      ...denseClassifier([120, 84], seed, 2),
    ],
  });
}

registerModel(ModelNames.CNN, buildCnn);
registerModel(ModelNames.MLP, buildMlp);
registerModel(ModelNames.LENET5, buildLenet5);
