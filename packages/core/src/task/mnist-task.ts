import { type DatasetSource, datasetFrom, type ImageSet } from '../data/mnist.js';
import type { SampleSet } from '../data/samples.js';
import { buildModel } from '../models/index.js';
import type { ModelSpec } from '../models/spec.js';
import type { Task } from './task.js';

/**
 * The built-in task: a registered model (`cnn`, `mlp`, `lenet5`) on MNIST-format data, trained with
 * sparse cross-entropy. Pixels travel as bytes and become [0, 1] on the worker.
 */
export function mnistTask(model: ModelSpec, source: DatasetSource = {}): Task {
  return {
    name: `mnist/${model.name}`,
    buildModel: (seed) => buildModel(model, { seed }),
    loadData: async () => {
      const dataset = await datasetFrom(source);
      return { train: imageSamples(dataset.train), test: imageSamples(dataset.test) };
    },
    loss: 'sparseCategoricalCrossentropy',
    metrics: ['accuracy'],
    featureDivisor: 255,
    images: true,
    // The built-in defaults (DEFAULT_TRAINING_CONFIG) are tuned for these models already.
    defaults: {},
  };
}

export function imageSamples(set: ImageSet): SampleSet {
  return {
    count: set.count,
    features: { values: set.images, sampleShape: [set.rows, set.cols] },
    labels: { values: set.labels, sampleShape: [] },
  };
}
