import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'dashboard/**/*.test.ts'],
    testTimeout: 60_000,
    // The files share one module graph per worker: loading tfjs and the wasm backend again for each
    // file took longer than most files' tests. Every test starts and closes its own coordinator.
    isolate: false,
  },
});
