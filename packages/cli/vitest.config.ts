import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/small-test-set.ts'],
    testTimeout: 60_000,
    // These tests start coordinators and worker processes; on a 2-core machine running the files one
    // at a time is faster than letting them fight over the cores (and keeps their timeouts honest).
    fileParallelism: false,
  },
});
