import { CallosumError, ErrorCodes } from '../errors.js';
import { optimizerContext } from './flat-optimizer.js';
import type { OptimizerName } from './optimizer.js';
import { rejectUnknownOptions } from './validation.js';

/** The settings each built-in optimizer's spec takes besides its name. */
export const OPTIMIZER_SETTINGS: Readonly<Record<OptimizerName, readonly string[]>> = {
  sgd: [],
  momentum: ['momentum', 'nesterov'],
  adam: ['beta1', 'beta2', 'epsilon'],
  adamw: ['beta1', 'beta2', 'epsilon', 'weightDecay'],
};

/** Other spellings of learningRate (Keras's learning_rate, PyTorch's lr), in lower case, for didYouMean. */
export const LEARNING_RATE_ALIASES: Readonly<Record<string, string>> = {
  learningrate: 'learningRate',
  learning_rate: 'learningRate',
  lr: 'learningRate',
};

/**
 * Rejects options of `spec` that the built-in optimizer `name` does not take. The learning rate is not
 * one of them but an option of the run beside `optimizer`: one given in the spec is refused saying so.
 */
export function rejectUnknownOptimizerOptions(name: OptimizerName, spec: object): void {
  const context = optimizerContext(name);
  const known = ['name', ...OPTIMIZER_SETTINGS[name]];
  const learningRate = Object.keys(spec).find((key) =>
    Object.hasOwn(LEARNING_RATE_ALIASES, key.toLowerCase()),
  );
  if (learningRate !== undefined) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `${context} has no option "${learningRate}": the learning rate is the training option learningRate (--lr), beside optimizer; options: ${known.join(', ')}`,
    );
  }
  rejectUnknownOptions(context, spec as Record<string, unknown>, known);
}
