/** Helpers shared by the training tests (not part of the public API). */
import type { SampleBatch } from '../data/samples.js';
import type { ModelSpec } from '../models/spec.js';
import { mnistTask } from '../task/mnist-task.js';
import { instantiateTask, type TaskModel } from '../task/task.js';

/** A built-in model as the trainer sees it: the MNIST task of `spec`, instantiated for `seed` (buildModel's default seed, 0, unless given). */
export function builtinTaskModel(spec: ModelSpec, seed = 0): TaskModel {
  return instantiateTask(mnistTask(spec), seed);
}

/** A linear congruential generator: the same numbers on every run. */
export function randomGenerator(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** A batch for a 28×28 MNIST model: features uniform in [0, 1), labels in 0..9. */
export function randomBatch(count: number, seed: number): SampleBatch {
  const next = randomGenerator(seed);
  return {
    features: Float32Array.from({ length: count * 784 }, next),
    labels: Int32Array.from({ length: count }, () => Math.floor(next() * 10)),
    count,
  };
}
