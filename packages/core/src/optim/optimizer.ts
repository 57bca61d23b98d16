/**
 * Optimizers update one flat Float32Array of model parameters in place from one flat gradient of the same
 * length, so a coordinator can apply an averaged gradient without touching tensors.
 */
export interface Optimizer {
  readonly name: string;
  /** The parameter and gradient length this optimizer was created for (the length of every slot). */
  readonly parameterCount: number;
  /** Applies one update to `params` in place. `learningRate` is this step's value (schedules are separate). */
  step(params: Float32Array, gradient: Float32Array, learningRate: number): void;
  /** Step count and copies of the slot vectors: enough to resume bit-exactly with `importState`. */
  exportState(): OptimizerState;
  /** Replaces the step count and slots with copies of `state`; throws SHAPE_MISMATCH if it does not fit. */
  importState(state: OptimizerState): void;
}

export interface OptimizerState {
  readonly name: string;
  /** Number of completed steps. */
  readonly step: number;
  /** Per-parameter state vectors (e.g. Adam's moments), each `parameterCount` long. */
  readonly slots: Readonly<Record<string, Float32Array>>;
}

export const OptimizerNames = {
  SGD: 'sgd',
  MOMENTUM: 'momentum',
  ADAM: 'adam',
  ADAMW: 'adamw',
} as const;

export type OptimizerName = (typeof OptimizerNames)[keyof typeof OptimizerNames];

export interface SgdSpec {
  readonly name: typeof OptimizerNames.SGD;
}

export interface MomentumSpec {
  readonly name: typeof OptimizerNames.MOMENTUM;
  /** Decay of the velocity, in [0, 1). Default 0.9. */
  readonly momentum?: number;
  /** Use the Nesterov look-ahead update. Default false. */
  readonly nesterov?: boolean;
}

export interface AdamSpec {
  readonly name: typeof OptimizerNames.ADAM;
  /** Decay of the first-moment estimate, in [0, 1). Default 0.9. */
  readonly beta1?: number;
  /** Decay of the second-moment estimate, in [0, 1). Default 0.999. */
  readonly beta2?: number;
  /** Added to the root of the second moment, > 0. Default 1e-7 (tfjs). */
  readonly epsilon?: number;
}

export interface AdamWSpec extends Omit<AdamSpec, 'name'> {
  readonly name: typeof OptimizerNames.ADAMW;
  /** Decoupled weight decay factor, >= 0. Default 0.01. */
  readonly weightDecay?: number;
}

export type OptimizerSpec = SgdSpec | MomentumSpec | AdamSpec | AdamWSpec;

/**
 * Builds an optimizer for `parameterCount` parameters. `spec` is untrusted (it may come from a config
 * file), so a factory validates every option it reads and rejects options it does not know.
 */
export type OptimizerFactory<Spec extends { readonly name: string }> = (
  spec: Spec,
  parameterCount: number,
) => Optimizer;
