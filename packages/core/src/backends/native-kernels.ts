/**
 * core's native kernels (native/, a Node-API addon compiled by the `build` script where a C++ compiler
 * and Node's headers are present): a float32 matrix product and a 2-D convolution for the wasm backend that
 * work on the backend's heap in place and give the bits XNNPACK gives there (and a convolution's filter
 * gradient, with the bits of the same product that core's WebAssembly kernel gives), and Adam and the gradient
 * passes (finiteness, mean) over JavaScript's Float32Arrays in place with the bits of core's WebAssembly
 * loops; on AVX-512 or AVX2 where the CPU has them (the products about 4× XNNPACK's rate on the reference
 * model's shapes; docs/benchmarks.md).
 *
 * Optional: where the addon was not built or does not load (another platform, no compiler), or
 * CALLOSUM_NATIVE_KERNELS=off, core keeps its WebAssembly kernels, with the same results.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { CallosumError, ErrorCodes } from '../errors.js';
import type { AdamScalarArguments, FilterGradientOperands } from '../wasm/kernels.js';

/** The addon's exports (byte offsets into `heap`, strides in elements; bias -1 for none). */
export interface NativeKernels {
  matMul(
    heap: ArrayBuffer,
    left: number,
    leftRowStride: number,
    leftColumnStride: number,
    right: number,
    rightRowStride: number,
    rightColumnStride: number,
    out: number,
    bias: number,
    rows: number,
    columns: number,
    inner: number,
    relu: boolean,
  ): void;
  /** A 2-D convolution of NHWC float32 tensors, filter [fh, fw, inC, outC] (byte offsets; bias -1 for none). */
  conv2d(
    heap: ArrayBuffer,
    input: number,
    filter: number,
    out: number,
    bias: number,
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
    dilationHeight: number,
    dilationWidth: number,
    padTop: number,
    padLeft: number,
    relu: boolean,
  ): void;
  /** A 2-D convolution's filter gradient from its NHWC input and dy (byte offsets; dilation 1). */
  conv2dBackpropFilter(heap: ArrayBuffer, ...operands: FilterGradientOperands): void;
  /** Adam with decoupled weight decay over Float32Arrays of one length, in place (optim/adam-native.ts). */
  adam(
    params: Float32Array,
    gradient: Float32Array,
    firstMoment: Float32Array,
    secondMoment: Float32Array,
    ...scalars: AdamScalarArguments
  ): void;
  /** Whether every value is finite. */
  allFinite(values: Float32Array): boolean;
  /** into = float32(float64(values) × scale). */
  scaleInto(into: Float32Array, values: Float32Array, scale: number): void;
  /** into = float32((float64(a) + float64(b)) × scale). */
  addScaled(into: Float32Array, a: Float32Array, b: Float32Array, scale: number): void;
  /** Has glibc's malloc keep freed memory (see keepFreedMemory below); false off glibc. */
  keepFreedMemory(): boolean;
  /** "avx512f", "avx2" or "baseline": the vector instructions the kernels run on here. */
  instructionSet(): string;
}

/** core's native kernels, or undefined (a parameter of the wasm kernels so that tests can take them away). */
export type NativeKernelsFor = () => NativeKernels | undefined;

export type NativeKernelsStatus =
  | { readonly available: true; readonly instructionSet: string }
  | { readonly available: false; readonly reason: string };

/** Where the build puts the addon: dist/ is two levels above both src/backends/ and dist/backends/. */
const ADDON_PATH = fileURLToPath(new URL('../../dist/callosum-kernels.node', import.meta.url));
export const NATIVE_KERNELS_VARIABLE = 'CALLOSUM_NATIVE_KERNELS';

let loaded: { kernels: NativeKernels | undefined; status: NativeKernelsStatus } | undefined;

/** The native kernels of this process, or undefined where they are off or unavailable (see status). */
export function nativeKernels(): NativeKernels | undefined {
  return load().kernels;
}

/** Whether the wasm backend uses core's native kernels here, and if not, why not. */
export function nativeKernelsStatus(): NativeKernelsStatus {
  return load().status;
}

function load(): { kernels: NativeKernels | undefined; status: NativeKernelsStatus } {
  loaded ??= loadOnce();
  return loaded;
}

function loadOnce(): { kernels: NativeKernels | undefined; status: NativeKernelsStatus } {
  const setting = process.env[NATIVE_KERNELS_VARIABLE] ?? '';
  if (setting === 'off') {
    return { kernels: undefined, status: { available: false, reason: `${NATIVE_KERNELS_VARIABLE}=off` } };
  }
  if (setting !== '' && setting !== 'on') {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `${NATIVE_KERNELS_VARIABLE} must be 'on' or 'off', got '${setting}'`,
    );
  }
  if (!existsSync(ADDON_PATH)) {
    return {
      kernels: undefined,
      status: { available: false, reason: `not built (no ${ADDON_PATH}; see the build's output)` },
    };
  }
  try {
    const kernels = createRequire(import.meta.url)(ADDON_PATH) as NativeKernels;
    return { kernels, status: { available: true, instructionSet: kernels.instructionSet() } };
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return {
      kernels: undefined,
      status: { available: false, reason: `${ADDON_PATH} did not load: ${message}` },
    };
  }
}

/**
 * Has this process's malloc (glibc's) keep the memory it frees for reuse, instead of handing blocks of a
 * few megabytes back to the kernel and faulting fresh pages in for the next ones: a training step
 * allocates and frees such blocks every time (a weights or gradient frame, a tensor's copy), and the
 * page faults cost `pnpm bench` 10–40% of its throughput on a 2-core VM (docs/benchmarks.md). PyTorch
 * users get the same by preloading jemalloc or setting glibc's MALLOC_TRIM_THRESHOLD_. The process's
 * resident memory then stays near its peak. The `callosum` command calls this at start-up unless
 * CALLOSUM_KEEP_FREED_MEMORY=off; a program using core alone may call it too.
 *
 * @returns whether it took effect: false off glibc, or without core's native kernels.
 */
export function keepFreedMemory(): boolean {
  return nativeKernels()?.keepFreedMemory() ?? false;
}

/** One phrase for logs and benches: "core's native kernels (avx512f)" or why they are not used. */
export function describeNativeKernels(status: NativeKernelsStatus = nativeKernelsStatus()): string {
  return status.available
    ? `core's native kernels (${status.instructionSet})`
    : `no native kernels: ${status.reason}`;
}
