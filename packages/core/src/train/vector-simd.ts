/**
 * Passes over flat gradients: the finiteness check, and the scaling of one gradient, or of the sum of
 * two, into a mean (each float32 widened, added and multiplied in float64 and rounded back, the
 * operations of the plain JavaScript loop, so the same bits). By core's native kernels where they are
 * available, on the vectors in place; else as WebAssembly SIMD loops (four float32 lanes at a time for
 * the check, two float64 lanes for the mean), on copies in the module's memory, which grows to the
 * largest vector seen and is reused: copying runs at memory speed, several times faster than a
 * JavaScript loop over the elements.
 */
import { nativeKernels } from '../backends/native-kernels.js';
import { instantiateKernels, type Kernels, webAssembly } from '../wasm/kernels.js';

const BYTES_PER_PAGE = 65_536;
const FLOAT_BYTES = 4;
/** Both loops step over whole 16-byte blocks; the padding after a vector is kept at 0. */
const BLOCK_FLOATS = 4;

/** The three passes, whichever kernels compute them (the same bits). */
export interface VectorPasses {
  allFinite(values: Float32Array): boolean;
  scaleInto(into: Float32Array, values: Float32Array, scale: number): void;
  addScaled(into: Float32Array, a: Float32Array, b: Float32Array, scale: number): void;
}

/**
 * The loops are in assembly/kernels.ts (AssemblyScript, compiled at build time): `allFinite` (start, end)
 * → 1 if every float32 in [start, end) is finite (x × 0 is ±0 for a finite x and NaN otherwise; the lane
 * sums of those products are all 0 exactly when every element is finite), and `scaleOne` /
 * `scaleSumOfTwo` (first, stride, end, scale), which for the float32 pairs from `first` to `end` write
 * float32((float64(a) [+ float64(b)]) × scale), where a is at the position, b (with two inputs) one
 * `stride` further, and the result goes `inputs` strides further.
 */
class VectorKernels implements VectorPasses {
  private readonly memory = new webAssembly.Memory({ initial: 1 });
  private readonly allFiniteRun: Kernels['allFinite'];
  /** The scaling of one vector, and of the sum of two. */
  private readonly scaleSumRuns: Kernels['scaleOne'][];

  constructor() {
    const kernels = instantiateKernels(this.memory);
    this.allFiniteRun = kernels.allFinite;
    this.scaleSumRuns = [kernels.scaleOne, kernels.scaleSumOfTwo];
  }

  allFinite(values: Float32Array): boolean {
    this.reserve(values.length, 1);
    const input = this.vector(0, values.length, values);
    return this.allFiniteRun(input.byteOffset, input.byteOffset + this.stride(values.length)) === 1;
  }

  scaleInto(into: Float32Array, values: Float32Array, scale: number): void {
    this.scaleSum(into, [values], scale);
  }

  addScaled(into: Float32Array, a: Float32Array, b: Float32Array, scale: number): void {
    this.scaleSum(into, [a, b], scale);
  }

  /** `into` = (the sum of `inputs`, one or two vectors of into's length) × `scale`, in float64. */
  private scaleSum(into: Float32Array, inputs: readonly Float32Array[], scale: number): void {
    const run = this.scaleSumRuns[inputs.length - 1];
    if (run === undefined) throw new RangeError('scaleSum adds one or two vectors');
    this.reserve(into.length, inputs.length + 1);
    const copies = inputs.map((values, index) => this.vector(index, into.length, values));
    const first = copies[0] as Float32Array;
    const stride = this.stride(into.length);
    run(first.byteOffset, stride, first.byteOffset + stride, scale);
    into.set(this.vector(inputs.length, into.length));
  }

  /** Bytes per vector of `length` floats, padded to whole blocks. */
  private stride(length: number): number {
    return Math.ceil(length / BLOCK_FLOATS) * BLOCK_FLOATS * FLOAT_BYTES;
  }

  /** Grows the memory to hold `count` vectors of `length` floats (it never shrinks). */
  private reserve(length: number, count: number): void {
    const pages = Math.ceil((count * this.stride(length)) / BYTES_PER_PAGE);
    const missing = pages - this.memory.buffer.byteLength / BYTES_PER_PAGE;
    if (missing > 0) this.memory.grow(missing);
  }

  /** Vector `index` of the memory, `length` floats long: a copy of `values` (and zero padding) if given. */
  private vector(index: number, length: number, values?: Float32Array): Float32Array {
    const stride = this.stride(length);
    const block = new Float32Array(this.memory.buffer, index * stride, stride / FLOAT_BYTES);
    if (values !== undefined) {
      block.set(values);
      block.fill(0, length);
    }
    return block.subarray(0, length);
  }
}

let wasmPasses: VectorKernels | undefined;

/** The passes as WebAssembly SIMD loops (one module memory, shared by the calls of this thread). */
export function wasmVectorPasses(): VectorPasses {
  wasmPasses ??= new VectorKernels();
  return wasmPasses;
}

let passes: VectorPasses | undefined;

/** core's native kernels are VectorPasses themselves (the same three functions over Float32Arrays). */
function vectorPasses(): VectorPasses {
  passes ??= nativeKernels() ?? wasmVectorPasses();
  return passes;
}

/** True when every element of `values` is finite. */
export function allFiniteSimd(values: Float32Array): boolean {
  return vectorPasses().allFinite(values);
}

/** `into` = `values` × `scale`, each product taken in float64 and rounded to float32. */
export function scaleIntoSimd(into: Float32Array, values: Float32Array, scale: number): void {
  vectorPasses().scaleInto(into, values, scale);
}

/** `into` = (`a` + `b`) × `scale`, the sum and product taken in float64 and rounded to float32. */
export function addScaledSimd(into: Float32Array, a: Float32Array, b: Float32Array, scale: number): void {
  vectorPasses().addScaled(into, a, b, scale);
}

/** `into` = `a` + `b`, the sum taken in float64 and rounded to float32 (a plain loop's bits: × 1 is exact). */
export function addSimd(into: Float32Array, a: Float32Array, b: Float32Array): void {
  vectorPasses().addScaled(into, a, b, 1);
}
