import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeNativeKernels } from './native-kernels.js';
import { type BackendName, registerBackendCandidate } from './registry.js';

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

/** A built-in candidate: its tfjs backend has the name of the backend it provides. */
function registerBuiltin(
  backend: BackendName,
  packageName: string,
  load: () => Promise<void>,
  describe?: () => string,
): void {
  registerBackendCandidate({
    backend,
    packageName,
    tfjsBackend: backend,
    load,
    ...(describe ? { describe } : {}),
  });
}

// Registration order is the order `auto` tries them in: fastest first.
registerBuiltin('tensorflow', '@tensorflow/tfjs-node-gpu', () => importOptional('@tensorflow/tfjs-node-gpu'));
registerBuiltin('tensorflow', '@tensorflow/tfjs-node', () => importOptional('@tensorflow/tfjs-node'));
registerBuiltin(
  'wasm',
  '@tensorflow/tfjs-backend-wasm',
  async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    const { registerWasmTrainingKernels } = await import('./wasm-kernels/index.js');
    registerWasmTrainingKernels();
  },
  () => `with ${describeNativeKernels()}`,
);
registerBuiltin('cpu', '@tensorflow/tfjs-backend-cpu', async () => {
  await import('./cpu.js');
});
