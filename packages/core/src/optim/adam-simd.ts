/**
 * Adam's update as one WebAssembly SIMD loop over the flat vectors, two parameters per iteration in
 * float64 lanes (f64x2). It does exactly the float64 operations of the plain JavaScript formula, in the
 * same order, and rounds to float32 where that formula stores: IEEE-754 add, mul, div and sqrt round the
 * same in wasm as in JavaScript, and wasm SIMD has no fused multiply-add, so the bits are the same. It is
 * faster because the float64 divisions and square roots, which bound this loop, run two at a time.
 *
 * The module is a few hundred bytes, assembled from named opcodes (wasm/assembler.ts); its memory holds
 * the two moments for good, plus the parameters and the gradient, copied in for the step.
 */
import {
  assembleModule,
  EMPTY_BLOCK,
  localGet as get,
  MEMARG_8,
  Op,
  localSet as set,
  ValueType,
  webAssembly,
} from '../wasm/assembler.js';

const { i32: I32, f64: F64, v128: V128 } = ValueType;
/** The exported function's parameters, in order: byte offsets and counts (i32), then the scalars (f64). */
const PARAMS = [
  ['pairs', I32],
  ['params', I32],
  ['gradient', I32],
  ['firstMoment', I32],
  ['secondMoment', I32],
  ['beta1', F64],
  ['beta2', F64],
  ['oneMinusBeta1', F64],
  ['oneMinusBeta2', F64],
  ['firstMomentScale', F64],
  ['secondMomentScale', F64],
  ['epsilon', F64],
  ['learningRate', F64],
  ['weightDecay', F64],
] as const;
type ParamName = (typeof PARAMS)[number][0];
type ScalarName = Exclude<ParamName, 'pairs' | 'params' | 'gradient' | 'firstMoment' | 'secondMoment'>;
const SCALARS = PARAMS.filter(([, type]) => type === F64).map(([name]) => name as ScalarName);
const VECTORS = ['g', 'p', 'm', 'v', 'update'] as const;

/** Local indices: the parameters, then the byte position and end, a splat per scalar, the vectors. */
const param = (name: ParamName) => PARAMS.findIndex(([candidate]) => candidate === name);
const AT = PARAMS.length;
const END = AT + 1;
const splat = (name: ScalarName) => END + 1 + SCALARS.indexOf(name);
const vector = (name: (typeof VECTORS)[number]) => END + 1 + SCALARS.length + VECTORS.indexOf(name);

/** Pushes two float32 at `base` + position, widened to float64. */
const loadPair = (base: ParamName) => [
  ...get(param(base)),
  ...get(AT),
  Op.i32Add,
  ...Op.v128Load64Zero,
  ...MEMARG_8,
  ...Op.f64x2PromoteLowF32x4,
];
/** Stores the float64 pair that `value` pushes to `base` + position, rounded to float32. */
const storePair = (base: ParamName, value: number[]) => [
  ...get(param(base)),
  ...get(AT),
  Op.i32Add,
  ...value,
  ...Op.f32x4DemoteF64x2Zero,
  ...Op.v128Store64Lane,
  ...MEMARG_8,
  0,
];

// m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
// update = (m * firstMomentScale) / (sqrt(v * secondMomentScale) + epsilon)
// p = p - learningRate * (update + weightDecay * p)
const BODY = [
  ...get(param('pairs')),
  Op.i32Const,
  3,
  Op.i32Shl,
  ...set(END),
  ...SCALARS.flatMap((name) => [...get(param(name)), ...Op.f64x2Splat, ...set(splat(name))]),
  Op.block,
  EMPTY_BLOCK,
  Op.loop,
  EMPTY_BLOCK,
  ...[...get(AT), ...get(END), Op.i32GeU, Op.brIf, 1],
  ...[...loadPair('gradient'), ...set(vector('g'))],
  ...[...loadPair('params'), ...set(vector('p'))],
  ...[...get(splat('beta1')), ...loadPair('firstMoment'), ...Op.f64x2Mul],
  ...[
    ...get(splat('oneMinusBeta1')),
    ...get(vector('g')),
    ...Op.f64x2Mul,
    ...Op.f64x2Add,
    ...set(vector('m')),
  ],
  ...[...get(splat('beta2')), ...loadPair('secondMoment'), ...Op.f64x2Mul],
  ...[
    ...get(splat('oneMinusBeta2')),
    ...get(vector('g')),
    ...Op.f64x2Mul,
    ...get(vector('g')),
    ...Op.f64x2Mul,
  ],
  ...[...Op.f64x2Add, ...set(vector('v'))],
  ...storePair('firstMoment', get(vector('m'))),
  ...storePair('secondMoment', get(vector('v'))),
  ...[...get(vector('m')), ...get(splat('firstMomentScale')), ...Op.f64x2Mul],
  ...[...get(vector('v')), ...get(splat('secondMomentScale')), ...Op.f64x2Mul, ...Op.f64x2Sqrt],
  ...[...get(splat('epsilon')), ...Op.f64x2Add, ...Op.f64x2Div, ...set(vector('update'))],
  ...storePair('params', [
    ...get(vector('p')),
    ...get(splat('learningRate')),
    ...get(vector('update')),
    ...get(splat('weightDecay')),
    ...get(vector('p')),
    ...Op.f64x2Mul,
    ...Op.f64x2Add,
    ...Op.f64x2Mul,
    ...Op.f64x2Sub,
  ]),
  ...[...get(AT), Op.i32Const, 8, Op.i32Add, ...set(AT)],
  ...[Op.br, 0, Op.end, Op.end],
];
let compiled: object | undefined;

export interface AdamScalars {
  readonly beta1: number;
  readonly beta2: number;
  readonly firstMomentScale: number;
  readonly secondMomentScale: number;
  readonly epsilon: number;
  readonly learningRate: number;
  readonly weightDecay: number;
}

const BYTES_PER_PAGE = 65_536;
const FLOAT_BYTES = 4;

/**
 * One optimizer's wasm memory: its moments (`firstMoment`, `secondMoment`, views that stay valid: the
 * memory never grows) and room for a step's parameters and gradient.
 */
export class AdamSimd {
  readonly firstMoment: Float32Array;
  readonly secondMoment: Float32Array;
  private readonly params: Float32Array;
  private readonly gradient: Float32Array;
  private readonly run: (...args: number[]) => void;
  /** The vectors are padded to whole pairs; the padding stays 0 and is never read back. */
  private readonly pairs: number;

  constructor(readonly parameterCount: number) {
    this.pairs = Math.ceil(parameterCount / 2);
    const vectorBytes = this.pairs * 2 * FLOAT_BYTES;
    const pages = Math.ceil((4 * vectorBytes) / BYTES_PER_PAGE);
    const memory = new webAssembly.Memory({ initial: pages, maximum: pages });
    compiled ??= new webAssembly.Module(
      assembleModule({
        params: PARAMS.map(([, type]) => type),
        results: [],
        locals: [
          [2, I32],
          [SCALARS.length + VECTORS.length, V128],
        ],
        body: BODY,
        importsMemory: true,
      }),
    );
    const instance = new webAssembly.Instance(compiled, { env: { memory } });
    this.run = instance.exports.run as (...args: number[]) => void;
    const view = (index: number) => new Float32Array(memory.buffer, index * vectorBytes, parameterCount);
    this.params = view(0);
    this.gradient = view(1);
    this.firstMoment = view(2);
    this.secondMoment = view(3);
  }

  /** Updates `params` and the moments in place from `gradient`. */
  step(params: Float32Array, gradient: Float32Array, scalars: AdamScalars): void {
    const { beta1, beta2 } = scalars;
    this.params.set(params);
    this.gradient.set(gradient);
    this.run(
      this.pairs,
      this.params.byteOffset,
      this.gradient.byteOffset,
      this.firstMoment.byteOffset,
      this.secondMoment.byteOffset,
      beta1,
      beta2,
      1 - beta1,
      1 - beta2,
      scalars.firstMomentScale,
      scalars.secondMomentScale,
      scalars.epsilon,
      scalars.learningRate,
      scalars.weightDecay,
    );
    params.set(this.params);
  }
}
