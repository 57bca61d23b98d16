import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { webAssembly } from '../../wasm/kernels.js';
import { heapKernelsFor } from './heap-kernels.js';
import './test-support.js';

/** A stand-in for a backend whose emscripten module exposes `memory`. */
function backendWithMemory(memory: unknown): BackendWasm {
  return { wasm: { asm: { memory } } } as unknown as BackendWasm;
}

describe('heapKernelsFor', () => {
  it("instantiates core's kernels on the wasm backend's memory, once per backend", async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    const kernels = heapKernelsFor(backend);
    expect(kernels?.conv2dBackpropFilter).toBeTypeOf('function');
    expect(heapKernelsFor(backend)).toBe(kernels);
  });

  it('gives none for a shared memory (the threaded build) or a backend without a reachable memory', () => {
    const SharedMemory = webAssembly.Memory as unknown as new (descriptor: object) => object;
    const shared = new SharedMemory({ initial: 1, maximum: 1, shared: true });
    expect(heapKernelsFor(backendWithMemory(shared))).toBeUndefined();
    expect(heapKernelsFor(backendWithMemory(undefined))).toBeUndefined();
    expect(heapKernelsFor({ wasm: {} } as unknown as BackendWasm)).toBeUndefined();
  });
});
