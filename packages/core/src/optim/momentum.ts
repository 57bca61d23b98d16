import { FlatOptimizer, optimizerContext } from './flat-optimizer.js';
import { type MomentumSpec, type OptimizerFactory, OptimizerNames } from './optimizer.js';
import { rejectUnknownOptimizerOptions } from './optimizer-options.js';
import { DECAY_RATE, requireBoolean, requireNumber } from './validation.js';

const DEFAULT_MOMENTUM = 0.9;

/**
 * Heavy-ball momentum, as tfjs `tf.train.momentum(lr, momentum, useNesterov)`:
 * v = momentum * v + g, then p -= lr * v, or with Nesterov p -= lr * (g + momentum * v).
 */
class MomentumOptimizer extends FlatOptimizer<'velocity'> {
  constructor(
    parameterCount: number,
    private readonly momentum: number,
    private readonly nesterov: boolean,
  ) {
    super(OptimizerNames.MOMENTUM, parameterCount, ['velocity']);
  }

  protected update(params: Float32Array, gradient: Float32Array, learningRate: number): void {
    const { momentum, nesterov } = this;
    const { velocity } = this.slots;
    for (let i = 0; i < params.length; i++) {
      const g = gradient[i] as number;
      const v = momentum * (velocity[i] as number) + g;
      velocity[i] = v;
      params[i] = (params[i] as number) - learningRate * (nesterov ? g + momentum * v : v);
    }
  }
}

export const createMomentum: OptimizerFactory<MomentumSpec> = (spec, parameterCount) => {
  const context = optimizerContext(OptimizerNames.MOMENTUM);
  rejectUnknownOptimizerOptions(OptimizerNames.MOMENTUM, spec);
  return new MomentumOptimizer(
    parameterCount,
    requireNumber(context, 'momentum', spec.momentum ?? DEFAULT_MOMENTUM, DECAY_RATE),
    requireBoolean(context, 'nesterov', spec.nesterov ?? false),
  );
};
