/**
 * Adam's update as one WebAssembly SIMD loop over the flat vectors, two parameters per iteration in
 * float64 lanes (f64x2). It does exactly the float64 operations of the plain JavaScript formula, in the
 * same order, and rounds to float32 where that formula stores: IEEE-754 add, mul, div and sqrt round the
 * same in wasm as in JavaScript, and wasm SIMD has no fused multiply-add, so the bits are the same. It is
 * faster because the float64 divisions and square roots, which bound this loop, run two at a time.
 *
 * The loop is `adam` in assembly/kernels.ts (AssemblyScript, compiled at build time; wasm/kernels.ts
 * loads it); its memory holds the two moments for good, plus the parameters and the gradient, copied in
 * for the step.
 */
import { type AdamScalarArguments, instantiateKernels, type Kernels, webAssembly } from '../wasm/kernels.js';

export interface AdamScalars {
  readonly beta1: number;
  readonly beta2: number;
  readonly firstMomentScale: number;
  readonly secondMomentScale: number;
  readonly epsilon: number;
  readonly learningRate: number;
  readonly weightDecay: number;
}

/** The scalars in the order Adam's kernels take them (WebAssembly and native alike). */
export function adamScalarArguments(scalars: AdamScalars): AdamScalarArguments {
  const { beta1, beta2 } = scalars;
  return [
    beta1,
    beta2,
    1 - beta1,
    1 - beta2,
    scalars.firstMomentScale,
    scalars.secondMomentScale,
    scalars.epsilon,
    scalars.learningRate,
    scalars.weightDecay,
  ];
}

/** One optimizer's Adam pass: its two moments (exported with its state) and the update. */
export interface AdamLoop {
  readonly firstMoment: Float32Array;
  readonly secondMoment: Float32Array;
  /** Updates `params` and the moments in place from `gradient`. */
  step(params: Float32Array, gradient: Float32Array, scalars: AdamScalars): void;
}

const BYTES_PER_PAGE = 65_536;
const FLOAT_BYTES = 4;

/**
 * One optimizer's wasm memory: its moments (`firstMoment`, `secondMoment`, views that stay valid: the
 * memory never grows) and room for a step's parameters and gradient.
 */
export class AdamSimd implements AdamLoop {
  readonly firstMoment: Float32Array;
  readonly secondMoment: Float32Array;
  private readonly params: Float32Array;
  private readonly gradient: Float32Array;
  private readonly run: Kernels['adam'];
  /** The vectors are padded to whole pairs; the padding stays 0 and is never read back. */
  private readonly pairs: number;

  constructor(readonly parameterCount: number) {
    this.pairs = Math.ceil(parameterCount / 2);
    const vectorBytes = this.pairs * 2 * FLOAT_BYTES;
    const pages = Math.ceil((4 * vectorBytes) / BYTES_PER_PAGE);
    const memory = new webAssembly.Memory({ initial: pages, maximum: pages });
    this.run = instantiateKernels(memory).adam;
    const view = (index: number) => new Float32Array(memory.buffer, index * vectorBytes, parameterCount);
    this.params = view(0);
    this.gradient = view(1);
    this.firstMoment = view(2);
    this.secondMoment = view(3);
  }

  /** Updates `params` and the moments in place from `gradient`. */
  step(params: Float32Array, gradient: Float32Array, scalars: AdamScalars): void {
    this.params.set(params);
    this.gradient.set(gradient);
    this.run(
      this.pairs,
      this.params.byteOffset,
      this.gradient.byteOffset,
      this.firstMoment.byteOffset,
      this.secondMoment.byteOffset,
      ...adamScalarArguments(scalars),
    );
    params.set(this.params);
  }
}
