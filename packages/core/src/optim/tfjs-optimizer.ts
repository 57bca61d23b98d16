/**
 * tfjs optimizer objects (`tf.train.adam()`, ...) are not Callosum's optimizers, which update flat
 * vectors: where a spec is expected, one is recognised and refused, naming the spec to give instead
 * (printing it would dump its tensors).
 */
import * as tf from '@tensorflow/tfjs-core';
import { OptimizerNames } from './optimizer.js';

/** Whether `value` is a tfjs optimizer: a tf.Optimizer of this tfjs, or of another copy (it has applyGradients). */
export function isTfjsOptimizer(value: unknown): boolean {
  return (
    value instanceof tf.Optimizer ||
    (typeof value === 'object' &&
      value !== null &&
      typeof (value as { applyGradients?: unknown }).applyGradients === 'function')
  );
}

/**
 * What is wrong with `value` if it is a tfjs optimizer, completing "<what> ...", and what to give
 * instead: its name if Callosum has that optimizer (else adam) and its learning rate, as a task's
 * optimizer setting (`{ name, learningRate }`) or as run options (`optimizer` and `learningRate`).
 */
export function tfjsOptimizerRefusal(value: unknown, as: 'task setting' | 'run options'): string | undefined {
  if (!isTfjsOptimizer(value)) return undefined;
  const { learningRate } = value as { learningRate?: unknown };
  const className = (value as { getClassName?: () => unknown }).getClassName?.();
  const lowered = typeof className === 'string' ? className.toLowerCase() : '';
  const name = (Object.values(OptimizerNames) as string[]).includes(lowered) ? lowered : OptimizerNames.ADAM;
  const rate = typeof learningRate === 'number' ? learningRate : 0.001;
  const instead =
    as === 'task setting'
      ? `{ name: '${name}', learningRate: ${rate} }`
      : `optimizer { name: '${name}' } and learningRate ${rate}`;
  return `is a tfjs optimizer object, which Callosum does not take (its optimizers are its own): give ${instead} instead`;
}
