import { CallosumError, ErrorCodes } from '../errors.js';
import type { Optimizer, OptimizerState } from './optimizer.js';
import { NON_NEGATIVE, POSITIVE_INTEGER, requireNumber } from './validation.js';

/** How errors name an optimizer, e.g. `optimizer "adam"`. */
export function optimizerContext(name: string): string {
  return `optimizer "${name}"`;
}

/**
 * What every built-in optimizer shares: input checks, the step counter, and the slot vectors that make up
 * its state. A subclass supplies only the update formula.
 */
export abstract class FlatOptimizer<SlotName extends string> implements Optimizer {
  readonly parameterCount: number;
  protected readonly slots: Readonly<Record<SlotName, Float32Array>>;
  private completedSteps = 0;

  /**
   * `allocateSlots` makes the slot vectors once `parameterCount` is checked: by default one
   * zero-filled Float32Array per name in `slotNames`, or any zero-filled vectors of that length (Adam's
   * live in its WebAssembly memory).
   */
  protected constructor(
    readonly name: string,
    parameterCount: number,
    slotNames: readonly SlotName[],
    allocateSlots: (parameterCount: number) => Record<SlotName, Float32Array> = (count) =>
      Object.fromEntries(slotNames.map((slot) => [slot, new Float32Array(count)])) as Record<
        SlotName,
        Float32Array
      >,
  ) {
    this.parameterCount = requireNumber(this.context, 'parameterCount', parameterCount, POSITIVE_INTEGER);
    this.slots = allocateSlots(this.parameterCount);
  }

  step(params: Float32Array, gradient: Float32Array, learningRate: number): void {
    this.requireParameterLength('params', params);
    this.requireParameterLength('gradient', gradient);
    requireNumber(this.context, 'learningRate', learningRate, NON_NEGATIVE);
    const stepNumber = this.completedSteps + 1;
    this.update(params, gradient, learningRate, stepNumber);
    this.completedSteps = stepNumber;
  }

  /**
   * Applies one update in place. Implementations compute in float64 locals and store to the Float32Arrays
   * once per element. `stepNumber` counts from 1 (Adam's bias correction needs it).
   */
  protected abstract update(
    params: Float32Array,
    gradient: Float32Array,
    learningRate: number,
    stepNumber: number,
  ): void;

  exportState(): OptimizerState {
    const slots = Object.fromEntries(this.slotEntries().map(([slot, values]) => [slot, values.slice()]));
    return { name: this.name, step: this.completedSteps, slots };
  }

  importState(state: OptimizerState): void {
    // Check everything before changing anything, so a rejected state leaves this optimizer untouched.
    if (state.name !== this.name) {
      throw this.stateMismatch(`the state belongs to optimizer "${state.name}"`);
    }
    if (!Number.isSafeInteger(state.step) || state.step < 0) {
      throw this.stateMismatch(`the state's step must be an integer >= 0, got ${state.step}`);
    }
    const expectedSlots = Object.keys(this.slots).sort();
    const givenSlots = Object.keys(state.slots).sort();
    if (expectedSlots.join() !== givenSlots.join()) {
      throw this.stateMismatch(`the state has slots [${givenSlots}], expected [${expectedSlots}]`);
    }
    for (const slot of expectedSlots) {
      const values = state.slots[slot];
      if (!(values instanceof Float32Array) || values.length !== this.parameterCount) {
        throw this.stateMismatch(`slot "${slot}" must be a Float32Array of length ${this.parameterCount}`);
      }
    }
    for (const [slot, values] of this.slotEntries()) {
      values.set(state.slots[slot] as Float32Array);
    }
    this.completedSteps = state.step;
  }

  private get context(): string {
    return optimizerContext(this.name);
  }

  private slotEntries(): [string, Float32Array][] {
    return Object.entries<Float32Array>(this.slots);
  }

  private requireParameterLength(role: string, values: Float32Array): void {
    if (values.length !== this.parameterCount) {
      throw new CallosumError(
        ErrorCodes.SHAPE_MISMATCH,
        `${this.context}: ${role} has length ${values.length}, expected ${this.parameterCount}`,
      );
    }
  }

  private stateMismatch(reason: string): CallosumError {
    return new CallosumError(ErrorCodes.SHAPE_MISMATCH, `${this.context} cannot import state: ${reason}`);
  }
}
