import { CallosumError, ErrorCodes } from '../errors.js';
import { didYouMean } from '../options/did-you-mean.js';
import { createAdam, createAdamW } from './adam.js';
import { createMomentum } from './momentum.js';
import { type Optimizer, type OptimizerFactory, OptimizerNames, type OptimizerSpec } from './optimizer.js';
import { createSgd } from './sgd.js';

/** Any spec a registered factory may accept: a built-in spec, or a name plus options of a custom optimizer. */
export type AnyOptimizerSpec = OptimizerSpec | { readonly name: string };

const factories = new Map<string, OptimizerFactory<{ readonly name: string }>>();

/** Adds an optimizer under `name`. Registering a taken name is a programming error and throws. */
export function registerOptimizer<Spec extends { readonly name: string }>(
  name: Spec['name'],
  factory: OptimizerFactory<Spec>,
): void {
  if (factories.has(name)) {
    throw new CallosumError(ErrorCodes.DUPLICATE_REGISTRATION, `optimizer "${name}" is already registered`);
  }
  // Sound because createOptimizer only hands this factory specs whose name is `name`.
  factories.set(name, factory as OptimizerFactory<{ readonly name: string }>);
}

export function registeredOptimizerNames(): string[] {
  return [...factories.keys()];
}

/** Builds the optimizer `spec` names, with slots sized for `parameterCount` parameters. */
export function createOptimizer(spec: AnyOptimizerSpec, parameterCount: number): Optimizer {
  const factory = factories.get(spec.name);
  if (factory === undefined) {
    const names = registeredOptimizerNames();
    throw new CallosumError(
      ErrorCodes.UNKNOWN_NAME,
      `unknown optimizer "${spec.name}"${didYouMean(spec.name, names)}; registered optimizers: ${names.join(', ')}`,
    );
  }
  return factory(spec, parameterCount);
}

registerOptimizer(OptimizerNames.SGD, createSgd);
registerOptimizer(OptimizerNames.MOMENTUM, createMomentum);
registerOptimizer(OptimizerNames.ADAM, createAdam);
registerOptimizer(OptimizerNames.ADAMW, createAdamW);
