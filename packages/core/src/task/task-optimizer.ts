/**
 * A task's optimizer setting, spelled as Keras's compile takes it ('adam', or { name, learningRate?,
 * ...settings }), checked and split into the run's optimizer spec and learning rate.
 */
import { CallosumError, ErrorCodes } from '../errors.js';
import { optimizerContext } from '../optim/flat-optimizer.js';
import {
  LEARNING_RATE_ALIASES,
  OPTIMIZER_SETTINGS,
  unknownOptimizerOption,
} from '../optim/optimizer-options.js';
import { type AnyOptimizerSpec, createOptimizer, registeredOptimizerNames } from '../optim/registry.js';
import { tfjsOptimizerRefusal } from '../optim/tfjs-optimizer.js';
import { POSITIVE, requireNumber } from '../optim/validation.js';
import { didYouMean } from '../options/did-you-mean.js';
import { shown } from '../options/schema.js';
import type { TaskOptimizer } from './define-task.js';

/**
 * The optimizer spec and learning rate (if the task sets one) of the setting `optimizer`; what is wrong
 * with it throws, for the caller to name the task. The settings of a built-in optimizer are checked
 * here, so that the message lists learningRate among them; an optimizer registered in this process
 * checks its own when it is built.
 */
export function taskOptimizer(optimizer: TaskOptimizer): {
  optimizer: AnyOptimizerSpec;
  learningRate: number | undefined;
} {
  const refusal = tfjsOptimizerRefusal(optimizer, 'task setting');
  if (refusal !== undefined) throw invalid(`its optimizer ${refusal}`);
  const spec = typeof optimizer === 'string' ? { name: optimizer } : optimizer;
  if (typeof spec !== 'object' || spec === null || typeof spec.name !== 'string') {
    throw invalid(
      `its optimizer must be a name ('adam') or { name, learningRate?, ...settings }, got ${shown(optimizer)}`,
    );
  }
  const { name, learningRate, ...settings } = spec;
  if (Object.hasOwn(OPTIMIZER_SETTINGS, name)) {
    const known = ['name', 'learningRate', ...OPTIMIZER_SETTINGS[name as keyof typeof OPTIMIZER_SETTINGS]];
    const problem = unknownOptimizerOption(name, spec, known, LEARNING_RATE_ALIASES);
    if (problem !== undefined) throw invalid(`optimizer "${name}" ${problem}`);
  }
  // Built over one parameter, the optimizer checks its settings' values (a beta1 of 2, say) now, while
  // the task can be named, rather than when the run builds it. A name this process does not know is
  // refused here only when it is a typo of a built-in one: any other may name an optimizer that the
  // program registers in the process that builds it (the coordinator, in a star run; workers load the
  // module too), and is checked there.
  if (registeredOptimizerNames().includes(name) || didYouMean(name, BUILT_IN_NAMES) !== '') {
    createOptimizer({ name, ...settings }, 1);
  }
  if (learningRate !== undefined)
    requireNumber(optimizerContext(name), 'learningRate', learningRate, POSITIVE);
  return { optimizer: { name, ...settings }, learningRate };
}

const BUILT_IN_NAMES = Object.keys(OPTIMIZER_SETTINGS);

function invalid(problem: string): CallosumError {
  return new CallosumError(ErrorCodes.TASK_INVALID, problem);
}
