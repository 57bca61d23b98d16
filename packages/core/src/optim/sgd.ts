import { FlatOptimizer } from './flat-optimizer.js';
import { type OptimizerFactory, OptimizerNames, type SgdSpec } from './optimizer.js';
import { rejectUnknownOptimizerOptions } from './optimizer-options.js';

/** Plain gradient descent, as tfjs `tf.train.sgd`: p -= lr * g. */
class SgdOptimizer extends FlatOptimizer<never> {
  constructor(parameterCount: number) {
    super(OptimizerNames.SGD, parameterCount, []);
  }

  protected update(params: Float32Array, gradient: Float32Array, learningRate: number): void {
    for (let i = 0; i < params.length; i++) {
      params[i] = (params[i] as number) - learningRate * (gradient[i] as number);
    }
  }
}

export const createSgd: OptimizerFactory<SgdSpec> = (spec, parameterCount) => {
  rejectUnknownOptimizerOptions(OptimizerNames.SGD, spec);
  return new SgdOptimizer(parameterCount);
};
