import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { registerBackendCandidate } from './registry.js';

/**
 * Imports an optional package. The native TensorFlow packages are not dependencies of core (their
 * install script downloads libtensorflow, which fails offline), so they may be installed next to the
 * application instead of next to core: look there too.
 */
async function importOptional(packageName: string): Promise<void> {
  try {
    await import(packageName);
  } catch (errorFromCore) {
    const fromApplication = createRequire(join(process.cwd(), 'package.json'));
    let resolved: string;
    try {
      resolved = fromApplication.resolve(packageName);
    } catch {
      throw errorFromCore;
    }
    await import(pathToFileURL(resolved).href);
  }
}

// Registration order is the order `auto` tries them in: fastest first.
registerBackendCandidate({
  backend: 'tensorflow',
  packageName: '@tensorflow/tfjs-node-gpu',
  tfjsBackend: 'tensorflow',
  load: () => importOptional('@tensorflow/tfjs-node-gpu'),
});
registerBackendCandidate({
  backend: 'tensorflow',
  packageName: '@tensorflow/tfjs-node',
  tfjsBackend: 'tensorflow',
  load: () => importOptional('@tensorflow/tfjs-node'),
});
registerBackendCandidate({
  backend: 'wasm',
  packageName: '@tensorflow/tfjs-backend-wasm',
  tfjsBackend: 'wasm',
  load: async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    const { registerWasmTrainingKernels } = await import('./wasm-kernels/index.js');
    registerWasmTrainingKernels();
  },
});
registerBackendCandidate({
  backend: 'cpu',
  packageName: '@tensorflow/tfjs-backend-cpu',
  tfjsBackend: 'cpu',
  load: async () => {
    await import('@tensorflow/tfjs-backend-cpu');
  },
});
