/**
 * core's WebAssembly SIMD kernels (optim/adam-simd.ts, train/vector-simd.ts, the wasm backend's training
 * kernels in backends/wasm-kernels/, the SIMD128 limit in bench:profile), written in AssemblyScript in assembly/kernels.ts and compiled by the `build` script
 * into dist/kernels.wasm. The module imports one memory as `env.memory`; each user instantiates it with
 * its own.
 */
import { readFileSync } from 'node:fs';

/**
 * The compiled module, found from this file's folder: src/wasm/ under vitest and dist/wasm/ once built
 * are both two levels under the package root, so one path serves tests (which run the TypeScript
 * sources, after `pnpm turbo run build` — turbo's test task depends on build) and the published package.
 */
const KERNELS_URL = new URL('../../dist/kernels.wasm', import.meta.url);

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

export type WasmMemory = InstanceType<WebAssemblyApi['Memory']>;

/** Adam's scalars as the kernels take them (here and core's native ones, optim/adam-simd.ts). */
export type AdamScalarArguments = [
  beta1: number,
  beta2: number,
  oneMinusBeta1: number,
  oneMinusBeta2: number,
  firstMomentScale: number,
  secondMomentScale: number,
  epsilon: number,
  learningRate: number,
  weightDecay: number,
];

/**
 * A convolution's filter gradient as the kernels take it (here and core's native one): the byte offsets
 * of x, dy and dW, then the geometry.
 */
export type FilterGradientOperands = [
  x: number,
  dy: number,
  dW: number,
  batch: number,
  inHeight: number,
  inWidth: number,
  inChannels: number,
  outHeight: number,
  outWidth: number,
  outChannels: number,
  filterHeight: number,
  filterWidth: number,
  strideHeight: number,
  strideWidth: number,
  padTop: number,
  padLeft: number,
];

/** The exports of assembly/kernels.ts (byte offsets and counts are i32, scalars f64 or f32). */
export interface Kernels {
  adam(
    pairs: number,
    params: number,
    gradient: number,
    firstMoment: number,
    secondMoment: number,
    ...scalars: AdamScalarArguments
  ): void;
  allFinite(start: number, end: number): number;
  scaleOne(first: number, stride: number, end: number, scale: number): void;
  scaleSumOfTwo(first: number, stride: number, end: number, scale: number): void;
  simdPeak(iterations: number, value: number): number;
  conv2dBackpropFilter(...operands: FilterGradientOperands): void;
  maxPoolGrad2x2(
    x: number,
    dy: number,
    dx: number,
    batch: number,
    outHeight: number,
    outWidth: number,
    channels: number,
  ): void;
  biasAdd(a: number, b: number, out: number, rows: number, columns: number): void;
  reluGradient(x: number, dy: number, out: number, count: number): void;
  columnSums(values: number, rows: number, columns: number, totals: number, scratch: number): void;
  transposeMatrices(source: number, target: number, count: number, rows: number, columns: number): void;
}

let compiled: object | undefined;

function kernelsModule(): object {
  if (compiled === undefined) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(KERNELS_URL);
    } catch (error) {
      throw new Error(
        `@callosum/core: cannot read its WebAssembly kernels at ${KERNELS_URL.pathname}; ` +
          'build the package first (pnpm turbo run build)',
        { cause: error },
      );
    }
    compiled = new webAssembly.Module(bytes);
  }
  return compiled;
}

/** The kernels, working on `memory` (synchronously: the module is read and compiled once, on first use). */
export function instantiateKernels(memory: WasmMemory): Kernels {
  return new webAssembly.Instance(kernelsModule(), { env: { memory } }).exports as unknown as Kernels;
}
