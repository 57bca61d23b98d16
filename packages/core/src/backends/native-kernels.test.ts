import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { NATIVE_KERNELS_VARIABLE, nativeKernels, nativeKernelsStatus } from './native-kernels.js';

/** Runs `script` (an ES module) in a fresh node with core's built dist and returns its stdout. */
function runNode(script: string, env: NodeJS.ProcessEnv = {}, nodeFlags: string[] = []): string {
  const dist = new URL('../../dist/index.js', import.meta.url).href;
  const result = spawnSync(
    process.execPath,
    [...nodeFlags, '--input-type=module', '-e', `const core = await import('${dist}');\n${script}`],
    { encoding: 'utf8', env: { ...process.env, ...env } },
  );
  return result.stdout.trim();
}

describe('core native kernels', () => {
  it.runIf(process.env.CALLOSUM_REQUIRE_NATIVE_KERNELS === '1')(
    'are built and load where CALLOSUM_REQUIRE_NATIVE_KERNELS=1 requires them',
    () => {
      expect(nativeKernelsStatus()).toMatchObject({ available: true });
    },
  );

  it('say why they are off with CALLOSUM_NATIVE_KERNELS=off, and refuse an unknown setting', () => {
    const status = (setting: string) =>
      runNode(
        'try { console.log(JSON.stringify(core.nativeKernelsStatus())); } catch (error) { console.log(error.message); }',
        { [NATIVE_KERNELS_VARIABLE]: setting },
      );
    expect(JSON.parse(status('off'))).toEqual({ available: false, reason: 'CALLOSUM_NATIVE_KERNELS=off' });
    expect(status('fast')).toBe("CALLOSUM_NATIVE_KERNELS must be 'on' or 'off', got 'fast'");
  });

  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)
    ?.header?.glibcVersionRuntime;
  it.skipIf(nativeKernels() === undefined || glibc === undefined)(
    'keepFreedMemory stops the page faults of allocating and freeing blocks of megabytes (glibc)',
    () => {
      // 4 MB blocks made, touched and collected one after another, after 20 to warm up. glibc's own
      // threshold between heap and mmap moves with what it has freed, so whether it faults them in afresh
      // depends on the process's history; fixed at its default (128 KiB), every block is mmapped and
      // faulted in page by page, unless keepFreedMemory moves it.
      const faults = (keep: boolean) =>
        Number(
          runNode(
            `${keep ? 'if (!core.keepFreedMemory()) throw new Error("not kept");' : ''}
             const churn = (n) => { for (let i = 0; i < n; i++) { new Float32Array(1 << 20).fill(i); gc(); } };
             churn(20);
             const before = process.resourceUsage().minorPageFault;
             churn(100);
             console.log(process.resourceUsage().minorPageFault - before);`,
            { MALLOC_MMAP_THRESHOLD_: '131072' },
            ['--expose-gc'],
          ),
        );
      const freed = faults(false);
      const kept = faults(true);
      expect(freed).toBeGreaterThan(50_000);
      expect(kept).toBeLessThan(freed / 10);
    },
  );
});
