import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { instantiateKernels, type Kernels, type WasmMemory, webAssembly } from '../../wasm/kernels.js';

/** core's kernels working on a backend's heap, or undefined where they cannot. */
export type HeapKernelsFor = (backend: BackendWasm) => Kernels | undefined;

const instances = new WeakMap<BackendWasm, Kernels | undefined>();

/**
 * core's WebAssembly kernels (assembly/) instantiated on the wasm backend's own memory, so that they
 * read and write tensors where they are, addressed by `backend.getMemoryOffset`, with no copy in or out.
 * The module imports its memory and keeps nothing in it, so sharing the backend's heap changes nothing
 * for the backend; a heap that grows later is seen by both, being one Memory.
 *
 * Undefined when the backend's memory is not reachable or not importable: the emscripten module exposes
 * it as `asm.memory`, and the multi-threaded build's memory is shared, which this module does not
 * declare. Kernels then take their previous path. One instance per backend, made on first use.
 */
export const heapKernelsFor: HeapKernelsFor = (backend) => {
  if (!instances.has(backend)) {
    instances.set(backend, instantiateOnHeap(backend));
  }
  return instances.get(backend);
};

/** The backend's WebAssembly memory (its heap), where the emscripten module exposes it. */
export function backendMemory(backend: BackendWasm): WasmMemory | undefined {
  const memory = (backend.wasm as { asm?: { memory?: unknown } }).asm?.memory;
  return memory instanceof webAssembly.Memory ? (memory as WasmMemory) : undefined;
}

/**
 * The backend's heap as the plain ArrayBuffer core's native kernels take, read now (a grown memory has a
 * new buffer); undefined where it is not reachable or is shared (the threaded build).
 */
export function plainHeap(backend: BackendWasm): ArrayBuffer | undefined {
  const buffer = backendMemory(backend)?.buffer;
  return buffer instanceof ArrayBuffer ? buffer : undefined;
}

function instantiateOnHeap(backend: BackendWasm): Kernels | undefined {
  const memory = backendMemory(backend);
  if (memory === undefined) {
    return undefined;
  }
  try {
    return instantiateKernels(memory);
  } catch (error) {
    // A shared memory (threaded build) does not link; anything else, such as an unbuilt package, is a fault.
    if (error instanceof Error && error.name === 'LinkError') {
      return undefined;
    }
    throw error;
  }
}
