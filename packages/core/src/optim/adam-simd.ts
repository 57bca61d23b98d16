/**
 * Adam's update as one WebAssembly SIMD loop over the flat vectors, two parameters per iteration in
 * float64 lanes (f64x2). It does exactly the float64 operations of the plain JavaScript formula, in the
 * same order, and rounds to float32 where that formula stores: IEEE-754 add, mul, div and sqrt round the
 * same in wasm as in JavaScript, and wasm SIMD has no fused multiply-add, so the bits are the same. It is
 * faster because the float64 divisions and square roots, which bound this loop, run two at a time.
 *
 * The module is a few hundred bytes, assembled below from named opcodes (no toolchain, nothing to load);
 * its memory holds the two moments for good, plus the parameters and the gradient, copied in for the step.
 */

const SIMD = 0xfd;
const Op = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  i32Const: 0x41,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32Shl: 0x74,
  // SIMD opcodes follow the 0xfd prefix, as LEB128.
  f64x2Splat: [SIMD, 0x14],
  v128Load64Zero: [SIMD, 0x5d],
  v128Store64Lane: [SIMD, 0x5b],
  f32x4DemoteF64x2Zero: [SIMD, 0x5e],
  f64x2PromoteLowF32x4: [SIMD, 0x5f],
  f64x2Sqrt: [SIMD, 0xef, 0x01],
  f64x2Add: [SIMD, 0xf0, 0x01],
  f64x2Sub: [SIMD, 0xf1, 0x01],
  f64x2Mul: [SIMD, 0xf2, 0x01],
  f64x2Div: [SIMD, 0xf3, 0x01],
} as const;
const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
/** memarg for 8-byte accesses: alignment 2^3, offset 0. */
const MEMARG_8 = [3, 0];

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

const get = (index: number) => [Op.localGet, index];
const set = (index: number) => [Op.localSet, index];
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
  0x40,
  Op.loop,
  0x40,
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
  ...[Op.br, 0, Op.end, Op.end, Op.end],
];
/** Local declarations: (count, type) groups after the parameters. */
const LOCALS = [
  [2, I32],
  [SCALARS.length + VECTORS.length, V128],
];

function unsignedLeb128(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  do {
    const low = rest & 0x7f;
    rest >>>= 7;
    bytes.push(rest === 0 ? low : low | 0x80);
  } while (rest !== 0);
  return bytes;
}

const vec = (items: number[][]) => [...unsignedLeb128(items.length), ...items.flat()];
const name = (text: string) => vec([...text].map((char) => [char.charCodeAt(0)]));
const section = (id: number, content: number[]) => [id, ...unsignedLeb128(content.length), ...content];

function moduleBytes(): Uint8Array {
  const functionType = [0x60, ...vec(PARAMS.map(([, type]) => [type])), ...vec([])];
  const memoryImport = [...name('env'), ...name('memory'), 0x02, 0x00, 1];
  const body = [
    ...vec(LOCALS.map(([count, type]) => [...unsignedLeb128(count as number), type as number])),
    ...BODY,
  ];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([functionType])),
    ...section(2, vec([memoryImport])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name('adam'), 0x00, 0]])),
    ...section(10, vec([[...unsignedLeb128(body.length), ...body]])),
  ]);
}

/** The part of the WebAssembly JavaScript API used here (the project's TypeScript libs leave it out). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer };
}
const wasm = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

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
    const memory = new wasm.Memory({ initial: pages, maximum: pages });
    compiled ??= new wasm.Module(moduleBytes());
    const instance = new wasm.Instance(compiled, { env: { memory } });
    this.run = instance.exports.adam as (...args: number[]) => void;
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
