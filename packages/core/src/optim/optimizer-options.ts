import { CallosumError, ErrorCodes } from '../errors.js';
import { shown } from '../options/schema.js';
import { optimizerContext } from './flat-optimizer.js';
import { type OptimizerName, OptimizerNames } from './optimizer.js';
import { unknownOption } from './validation.js';

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
  const problem = unknownOptimizerOption(name, spec, known);
  if (problem !== undefined) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `${context} ${problem}`);
}

/**
 * unknownOption's message for the spec of the optimizer `name`, whose options are `known`. A momentum
 * given to sgd (Keras's and PyTorch's SGD take one) adds the spec of Callosum's "momentum" to give.
 */
export function unknownOptimizerOption(
  name: string,
  spec: object,
  known: readonly string[],
  aliases?: Readonly<Record<string, string>>,
): string | undefined {
  const problem = unknownOption(spec, known, aliases);
  if (problem === undefined || name !== OptimizerNames.SGD) return problem;
  const kept = Object.entries(spec).filter(
    ([key]) => key === 'learningRate' || OPTIMIZER_SETTINGS.momentum.includes(key),
  );
  if (kept.every(([key]) => key === 'learningRate')) return problem;
  const fields = kept.map(([key, value]) => `, ${key}: ${shown(value)}`).join('');
  return `${problem}; for SGD with momentum, give { name: 'momentum'${fields} } instead`;
}
