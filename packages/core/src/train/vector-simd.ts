/**
 * Passes over flat gradients as WebAssembly SIMD loops: the finiteness check (four float32 lanes at a
 * time) and the scaling of one gradient, or of the sum of two, into a mean (two float64 lanes: each
 * float32 widened, added and multiplied in float64 and rounded back, the operations of the plain
 * JavaScript loop, so the same bits). The vectors are copied
 * into the module's memory, which grows to the largest vector seen and is reused; copying runs at memory
 * speed, several times faster than a JavaScript loop over the elements.
 */
import {
  assembleModule,
  EMPTY_BLOCK,
  localGet as get,
  MEMARG_8,
  MEMARG_16,
  Op,
  localSet as set,
  ValueType,
  webAssembly,
} from '../wasm/assembler.js';

const { i32: I32, f64: F64, v128: V128 } = ValueType;
const BYTES_PER_PAGE = 65_536;
const FLOAT_BYTES = 4;
/** Both loops step over whole 16-byte blocks; the padding after a vector is kept at 0. */
const BLOCK_FLOATS = 4;

/** `for (at = start; at < end; at += step) body`, with `at` and `end` byte offsets in locals. */
const loop = (at: number, end: number, step: number, body: number[]) => [
  ...[Op.block, EMPTY_BLOCK, Op.loop, EMPTY_BLOCK],
  ...[...get(at), ...get(end), Op.i32GeU, Op.brIf, 1],
  ...body,
  ...[...get(at), Op.i32Const, step, Op.i32Add, ...set(at)],
  ...[Op.br, 0, Op.end, Op.end],
];

/**
 * (start, end) → 1 if every float32 in [start, end) is finite, else 0. x × 0 is ±0 for a finite x and NaN
 * otherwise; the lane sums of those products are all 0 exactly when every element is finite.
 * Locals: 0 start, 1 end, 2 sums, 3 zero.
 */
const allFiniteModule = () =>
  assembleModule({
    params: [I32, I32],
    results: [I32],
    locals: [[2, V128]],
    body: [
      ...[Op.i32Const, 0, ...Op.i32x4Splat, ...set(3)],
      ...loop(0, 1, 16, [
        ...[
          ...get(2),
          ...get(0),
          ...Op.v128Load,
          ...MEMARG_16,
          ...get(3),
          ...Op.f32x4Mul,
          ...Op.f32x4Add,
          ...set(2),
        ],
      ]),
      ...[...get(2), ...get(3), ...Op.f32x4Eq, ...Op.i32x4AllTrue],
    ],
    importsMemory: true,
  });

/**
 * (first, stride, end, scale): for the float32 pairs from `first` to `end`, writes
 * float32((float64(a) [+ float64(b)]) × scale), where a is at the position, b (with two inputs) one
 * `stride` further, and the result goes `inputs` strides further. Locals: 0 position, 1 stride, 2 end,
 * 3 scale, 4 scale splat.
 */
const scaleSumModule = (inputs: 1 | 2) => {
  const at = (strides: number) => [
    ...get(0),
    ...Array.from({ length: strides }, () => [...get(1), Op.i32Add]).flat(),
  ];
  const load = (strides: number) => [
    ...at(strides),
    ...Op.v128Load64Zero,
    ...MEMARG_8,
    ...Op.f64x2PromoteLowF32x4,
  ];
  return assembleModule({
    params: [I32, I32, I32, F64],
    results: [],
    locals: [[1, V128]],
    body: [
      ...[...get(3), ...Op.f64x2Splat, ...set(4)],
      ...loop(0, 2, 8, [
        ...at(inputs),
        ...load(0),
        ...(inputs === 2 ? [...load(1), ...Op.f64x2Add] : []),
        ...[...get(4), ...Op.f64x2Mul, ...Op.f32x4DemoteF64x2Zero, ...Op.v128Store64Lane, ...MEMARG_8, 0],
      ]),
    ],
    importsMemory: true,
  });
};

class VectorKernels {
  private readonly memory = new webAssembly.Memory({ initial: 1 });
  private readonly allFiniteRun: (start: number, end: number) => number;
  /** The scaling of one vector, and of the sum of two. */
  private readonly scaleSumRuns: ((first: number, stride: number, end: number, scale: number) => void)[];

  constructor() {
    const instantiate = (bytes: Uint8Array) =>
      new webAssembly.Instance(new webAssembly.Module(bytes), { env: { memory: this.memory } }).exports.run;
    this.allFiniteRun = instantiate(allFiniteModule()) as VectorKernels['allFiniteRun'];
    this.scaleSumRuns = [1, 2].map(
      (inputs) => instantiate(scaleSumModule(inputs as 1 | 2)) as VectorKernels['scaleSumRuns'][number],
    );
  }

  allFinite(values: Float32Array): boolean {
    this.reserve(values.length, 1);
    const input = this.vector(0, values.length, values);
    return this.allFiniteRun(input.byteOffset, input.byteOffset + this.stride(values.length)) === 1;
  }

  /** `into` = (the sum of `inputs`, one or two vectors of into's length) × `scale`, in float64. */
  scaleSum(into: Float32Array, inputs: readonly Float32Array[], scale: number): void {
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

let kernels: VectorKernels | undefined;

/** True when every element of `values` is finite. */
export function allFiniteSimd(values: Float32Array): boolean {
  kernels ??= new VectorKernels();
  return kernels.allFinite(values);
}

/** `into` = `values` × `scale`, each product taken in float64 and rounded to float32. */
export function scaleIntoSimd(into: Float32Array, values: Float32Array, scale: number): void {
  kernels ??= new VectorKernels();
  kernels.scaleSum(into, [values], scale);
}

/** `into` = (`a` + `b`) × `scale`, the sum and product taken in float64 and rounded to float32. */
export function addScaledSimd(into: Float32Array, a: Float32Array, b: Float32Array, scale: number): void {
  kernels ??= new VectorKernels();
  kernels.scaleSum(into, [a, b], scale);
}
