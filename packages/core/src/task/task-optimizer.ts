/**
 * A task's optimizer setting, spelled as Keras's compile takes it ('adam', or { name, learningRate?,
 * ...settings }), checked and split into the run's optimizer spec and learning rate.
 */
import { LEARNING_RATE_ALIASES, OPTIMIZER_SETTINGS } from '../optim/optimizer-options.js';
import type { AnyOptimizerSpec } from '../optim/registry.js';
import { tfjsOptimizerRefusal } from '../optim/tfjs-optimizer.js';
import { unknownOption } from '../optim/validation.js';
import { shown } from '../options/schema.js';
import type { TaskOptimizer } from './define-task.js';

/**
 * The optimizer spec and learning rate (if the task sets one) of the setting `optimizer`; `fail` makes
 * the error for what is wrong with it. The settings of a built-in optimizer are checked here, so that
 * the message lists learningRate among them; a registered optimizer of the task's own checks its own.
 */
export function taskOptimizer(
  optimizer: TaskOptimizer,
  fail: (problem: string) => Error,
): { optimizer: AnyOptimizerSpec; learningRate: number | undefined } {
  const refusal = tfjsOptimizerRefusal(optimizer, 'task setting');
  if (refusal !== undefined) throw fail(`its optimizer ${refusal}`);
  if (typeof optimizer === 'string') return { optimizer: { name: optimizer }, learningRate: undefined };
  if (typeof optimizer !== 'object' || optimizer === null || typeof optimizer.name !== 'string') {
    throw fail(
      `its optimizer must be a name ('adam') or { name, learningRate?, ...settings }, got ${shown(optimizer)}`,
    );
  }
  const { name, learningRate, ...settings } = optimizer;
  if (Object.hasOwn(OPTIMIZER_SETTINGS, name)) {
    const known = ['name', 'learningRate', ...OPTIMIZER_SETTINGS[name as keyof typeof OPTIMIZER_SETTINGS]];
    const problem = unknownOption(optimizer, known, LEARNING_RATE_ALIASES);
    if (problem !== undefined) throw fail(`optimizer "${name}" ${problem}`);
  }
  return { optimizer: { name, ...settings }, learningRate };
}
