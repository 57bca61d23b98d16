import type { NativeKernels } from '../backends/native-kernels.js';
import { type AdamLoop, type AdamScalars, adamScalarArguments } from './adam-simd.js';

/**
 * Adam's update by core's native kernels (native/vectors.cc): the float64 operations of AdamSimd in the
 * same order, rounded to float32 where it stores, so the same bits, on the Float32Arrays in place (no
 * copy in or out) and as wide as the CPU's vectors.
 */
export class AdamNative implements AdamLoop {
  readonly firstMoment: Float32Array;
  readonly secondMoment: Float32Array;

  constructor(
    parameterCount: number,
    private readonly kernels: NativeKernels,
  ) {
    this.firstMoment = new Float32Array(parameterCount);
    this.secondMoment = new Float32Array(parameterCount);
  }

  step(params: Float32Array, gradient: Float32Array, scalars: AdamScalars): void {
    this.kernels.adam(params, gradient, this.firstMoment, this.secondMoment, ...adamScalarArguments(scalars));
  }
}
