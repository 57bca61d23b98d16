import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lastJsonLine, runCli, smallTestSetData, temporaryDirectory, twoStepTraining } from './processes.js';

describe('callosum train: a run directory belongs to one run', () => {
  it('refuses a second run in the same --out; resuming the finished run reports its stored summary', async () => {
    const root = await temporaryDirectory('one-run');
    const runDir = join(root, 'r');
    const first = await runCli([
      'train',
      '--workers',
      '2',
      '--steps',
      '3',
      '--micro-batch-size',
      '7',
      ...smallTestSetData(),
      '--out',
      runDir,
      '--json',
    ]);
    expect(first.code, first.stderr).toBe(0);
    const summary = lastJsonLine<{ steps: number; testAccuracy: number }>(first);

    const second = await runCli(['train', '--workers', '2', '--steps', '2', '--out', runDir]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`already holds a finished run`);
    expect(second.stderr).toContain('--overwrite');
    expect(second.stderr).not.toMatch(/^\s+at /m);

    const resumed = await runCli(['train', '--workers', '2', '--resume', runDir, '--steps', '9', '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`the run in ${runDir} is already complete`);
    expect(resumed.stderr).toContain('ignoring --steps');
    expect(lastJsonLine<typeof summary>(resumed)).toEqual(summary);
    expect(Number.isFinite(lastJsonLine<typeof summary>(resumed).testAccuracy)).toBe(true);

    const replaced = await runCli([...twoStepTraining(runDir), '--overwrite', '--json']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(lastJsonLine<{ steps: number }>(replaced).steps).toBe(2);
    expect((await readdir(runDir)).filter((name) => name.startsWith('replaced-'))).toHaveLength(1);
  }, 240_000);

  it('--resume warns about each flag it ignores', async () => {
    const runDir = await temporaryDirectory('ignored-flags');
    const stopped = await runCli(['coordinator', '--steps', '5', '--start-timeout', '1', '--out', runDir]);
    expect(stopped.code).toBe(1);
    // No checkpoint (it never trained), but the flags are named before that is found out.
    const resumed = await runCli(['train', '--resume', runDir, '--steps', '9', '--lr', '0.5'], {
      env: { CALLOSUM_MODEL: 'mlp', CALLOSUM_BATCH_NORM: 'sync' },
    });
    expect(resumed.stderr).toMatch(
      /warning: --resume continues the run .*ignoring --model, --lr, --batch-norm, --steps/,
    );
  }, 60_000);

  it('a coordinator that no worker joined leaves no run files: the same command runs again', async () => {
    const runDir = join(await temporaryDirectory('never-started'), 'run');
    const command = [
      'coordinator',
      '--model',
      'mlp',
      '--port',
      '0',
      '--start-timeout',
      '500',
      '--out',
      runDir,
    ];
    for (const attempt of [1, 2]) {
      const stopped = await runCli(command);
      expect(stopped.code, `attempt ${attempt}`).toBe(1);
      expect(stopped.stderr).toContain('NO_WORKERS: only 0 of 1 workers joined within 500 ms');
      expect(await stat(runDir).catch(() => undefined)).toBeUndefined();
      expect(stopped.stderr).not.toContain('continue with');
      expect(stopped.stderr).toContain(`no step was trained: removed the run's files from ${runDir}`);
    }
  }, 60_000);
});
