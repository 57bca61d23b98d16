// Test support for the *.test.ts files of this folder: runs one computation on the cpu backend (the
// reference) and on wasm, from the same seeded inputs.
import '../cpu.js';
import '@tensorflow/tfjs-backend-wasm';
// tfjs-core alone registers no gradients (the @tensorflow/tfjs bundle and tfjs-layers import this).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import * as tf from '@tensorflow/tfjs-core';

export interface CpuAndWasmResults {
  cpu: { shape: number[]; values: Float32Array };
  wasm: { shape: number[]; values: Float32Array };
  maxAbsDifference: number;
}

/**
 * Runs `run` with `config` registered in place of the wasm kernel of the same name, then restores that
 * kernel: for testing a kernel built with other dependencies, such as without core's heap kernels.
 */
export async function withWasmKernel<T>(config: tf.KernelConfig, run: () => Promise<T>): Promise<T> {
  const registered = tf.getKernel(config.kernelName, 'wasm');
  tf.unregisterKernel(config.kernelName, 'wasm');
  tf.registerKernel(config);
  try {
    return await run();
  } finally {
    tf.unregisterKernel(config.kernelName, 'wasm');
    if (registered !== undefined) {
      tf.registerKernel(registered);
    }
  }
}

/** Runs `compute` on cpu, then on wasm; all tensors it creates are disposed. */
export async function computeOnCpuAndWasm(compute: () => tf.Tensor): Promise<CpuAndWasmResults> {
  const cpu = await computeOn('cpu', compute);
  const wasm = await computeOn('wasm', compute);
  return { cpu, wasm, maxAbsDifference: maxAbsDifference(cpu.values, wasm.values) };
}

export async function computeOn(
  backend: 'cpu' | 'wasm',
  compute: () => tf.Tensor,
): Promise<{ shape: number[]; values: Float32Array }> {
  await tf.setBackend(backend);
  const result = tf.tidy(compute);
  const values = Float32Array.from(result.dataSync());
  result.dispose();
  return { shape: result.shape, values };
}

export function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) {
    return Number.POSITIVE_INFINITY;
  }
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  }
  return max;
}

/** Deterministic uniform values in [min, max) (mulberry32), so cpu and wasm see identical inputs. */
export function seededUniform(size: number, seed: number, min = -1, max = 1): Float32Array {
  const values = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    values[i] = min + (((t ^ (t >>> 14)) >>> 0) / 4294967296) * (max - min);
  }
  return values;
}

/** Deterministic integers in [min, max]: pooling windows full of ties. */
export function seededIntegers(size: number, seed: number, min: number, max: number): Float32Array {
  return seededUniform(size, seed, min, max + 1).map(Math.floor);
}

/** How many elements of two float32 arrays of one length differ in their bits (NaN payloads and ±0 included). */
export function differingBits(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) {
    return Math.max(a.length, b.length);
  }
  const left = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const right = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let count = 0;
  for (let i = 0; i < left.length; i++) {
    if (left[i] !== right[i]) count++;
  }
  return count;
}

/** The indices of the NaN elements. */
export function nanPositions(values: Float32Array): number[] {
  return [...values.keys()].filter((i) => Number.isNaN(values[i]));
}

/** The values with every NaN replaced by `replacement`: for comparing bits where NaN payloads may differ. */
export function withoutNaN(values: Float32Array, replacement = 0): Float32Array {
  return values.map((value) => (Number.isNaN(value) ? replacement : value));
}
