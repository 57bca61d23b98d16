import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Test files that keep both cores busy with training from start to end. They run last: under
 * `pnpm test` the other packages' tests and type checks share the cores during the first minutes,
 * and the files that spend more of their time waiting on processes and signals suffer less from that.
 */
const CPU_BOUND = ['/test/train-cli.test.ts', '/test/coordinator.test.ts'];

class CpuBoundLast extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const cpuBound = (file: TestSpecification) => CPU_BOUND.some((name) => file.moduleId.endsWith(name));
    return [...sorted.filter((file) => !cpuBound(file)), ...sorted.filter(cpuBound)];
  }
}

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'],
    globalSetup: ['test/small-test-set.ts', 'test/shared-run-root.ts'],
    testTimeout: 60_000,
    // These tests start coordinators and worker processes; on a 2-core machine running the files one
    // at a time is faster than letting them fight over the cores (and keeps their timeouts honest).
    fileParallelism: false,
    sequence: { sequencer: CpuBoundLast },
  },
});
