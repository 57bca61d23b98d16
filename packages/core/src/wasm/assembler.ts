/**
 * Just enough of the WebAssembly binary format to assemble a one-function module from named opcodes:
 * core's few hand-written SIMD loops (optim/adam-simd.ts; the SIMD128 peak in bench:profile) need no
 * toolchain and nothing to load. The function is exported as `run` and may import one memory as
 * `env.memory`.
 */

const SIMD = 0xfd;

/** The opcodes used; SIMD ones are the 0xfd prefix and their LEB128 number. */
export const Op = {
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
  i32Sub: 0x6b,
  i32Shl: 0x74,
  i32Eqz: 0x45,
  i32x4Splat: [SIMD, 0x11],
  f32x4Splat: [SIMD, 0x13],
  f64x2Splat: [SIMD, 0x14],
  f32x4ExtractLane: [SIMD, 0x1f],
  v128Load: [SIMD, 0x00],
  f32x4Eq: [SIMD, 0x41],
  i32x4AllTrue: [SIMD, 0xa3, 0x01],
  v128Load64Zero: [SIMD, 0x5d],
  v128Store64Lane: [SIMD, 0x5b],
  f32x4DemoteF64x2Zero: [SIMD, 0x5e],
  f64x2PromoteLowF32x4: [SIMD, 0x5f],
  f32x4Add: [SIMD, 0xe4, 0x01],
  f32x4Mul: [SIMD, 0xe6, 0x01],
  f64x2Sqrt: [SIMD, 0xef, 0x01],
  f64x2Add: [SIMD, 0xf0, 0x01],
  f64x2Sub: [SIMD, 0xf1, 0x01],
  f64x2Mul: [SIMD, 0xf2, 0x01],
  f64x2Div: [SIMD, 0xf3, 0x01],
} as const;

export const ValueType = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b } as const;
/** The block type of a block or loop that leaves nothing on the stack. */
export const EMPTY_BLOCK = 0x40;
/** memarg for 8-byte accesses: alignment 2^3, offset 0. */
export const MEMARG_8 = [3, 0] as const;
/** memarg for 16-byte accesses: alignment 2^4, offset 0. */
export const MEMARG_16 = [4, 0] as const;

export const localGet = (index: number) => [Op.localGet, index];
export const localSet = (index: number) => [Op.localSet, index];

export interface FunctionSpec {
  readonly params: readonly number[];
  readonly results: readonly number[];
  /** (count, type) groups of the locals after the parameters. */
  readonly locals: readonly (readonly [number, number])[];
  /** The instructions, without the final `end`. */
  readonly body: readonly number[];
  /** Import a memory as `env.memory`. */
  readonly importsMemory: boolean;
}

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

const vector = (items: readonly (readonly number[])[]) => [...unsignedLeb128(items.length), ...items.flat()];
const name = (text: string) => vector([...text].map((char) => [char.charCodeAt(0)]));
const section = (id: number, content: number[]) => [id, ...unsignedLeb128(content.length), ...content];

/** The module's bytes: one function of `spec`, exported as `run`. */
export function assembleModule(spec: FunctionSpec): Uint8Array {
  const functionType = [
    0x60,
    ...vector(spec.params.map((type) => [type])),
    ...vector(spec.results.map((type) => [type])),
  ];
  const memoryImport = [...name('env'), ...name('memory'), 0x02, 0x00, 1];
  const body = [
    ...vector(spec.locals.map(([count, type]) => [...unsignedLeb128(count), type])),
    ...spec.body,
    Op.end,
  ];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([functionType])),
    ...(spec.importsMemory ? section(2, vector([memoryImport])) : []),
    ...section(3, vector([[0]])),
    ...section(7, vector([[...name('run'), 0x00, 0]])),
    ...section(10, vector([[...unsignedLeb128(body.length), ...body]])),
  ]);
}

/** The part of the WebAssembly JavaScript API used with these modules (the project's TypeScript libs leave it out). */
export interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: {
    initial: number;
    maximum?: number;
  }) => { buffer: ArrayBuffer; grow(pages: number): number };
}
export const webAssembly = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
