import { defineConfig } from 'vitest/config';

/**
 * Test files that need a fresh tfjs engine of their own: one checks what the engine prints when it
 * picks a backend by itself, the other that the wasm kernels register on an initialised backend.
 */
const NEED_FRESH_ENGINE = ['src/backends/cpu.test.ts', 'src/backends/wasm-kernels/index.test.ts'];
const ALL_TESTS = ['src/**/*.test.ts', 'test/**/*.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    projects: [
      {
        extends: true,
        // The rest share one module graph per worker: each file would otherwise spend longer loading
        // tfjs and the wasm backend than running its tests.
        test: { name: 'shared-engine', include: ALL_TESTS, exclude: NEED_FRESH_ENGINE, isolate: false },
      },
      { extends: true, test: { name: 'fresh-engine', include: NEED_FRESH_ENGINE } },
    ],
  },
});
