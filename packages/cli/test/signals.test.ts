import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { lastJsonLine, runCli, shortRun, temporaryDirectory, trainingUntil } from './processes.js';

const RUN = ['train', ...shortRun(), '--checkpoint-every', '1000'];

describe('stop signals', () => {
  it('a second SIGINT while stopping is acknowledged and does not cut the checkpoint short; the resume command is printed', async () => {
    const runDir = await temporaryDirectory('double-sigint');
    const run = await trainingUntil([...RUN, '--out', runDir], runDir, 8);
    // Ctrl-C pressed twice: the second once the first is acknowledged, so the kernel cannot merge the
    // two into one pending signal on a busy machine.
    const stopping = new Promise<void>((resolve) =>
      run.child.stderr.on('data', () => {
        if (run.stderr().includes('SIGINT: stopping')) resolve();
      }),
    );
    run.child.kill('SIGINT');
    await stopping;
    run.child.kill('SIGINT');
    const code = await run.exited;
    expect(code).toBe(1);
    expect(run.stderr()).toContain('saving checkpoint, please wait');
    const checkpoints = await readdir(join(runDir, 'checkpoints'));
    expect(checkpoints.filter((name) => name.endsWith('.tmp'))).toEqual([]);
    expect(checkpoints.some((name) => /^step-\d{9}\.ckpt$/.test(name))).toBe(true);
    const command = /continue with: (callosum train .*)$/m.exec(run.stderr())?.[1];
    // --data is not stored by the run, so the command must carry it.
    expect(command).toBe(
      `callosum train --workers 2 --data ${inject('smallTestSetDir')} --checkpoint-every 1000 --resume ${runDir}`,
    );
    const resumed = await runCli([...(command as string).split(' ').slice(1), '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(lastJsonLine<{ steps: number }>(resumed).steps).toBe(40);
  }, 180_000);

  it("Ctrl-C to the terminal's process group stops the workers without dumping their stderr", async () => {
    const runDir = await temporaryDirectory('group-sigint');
    const run = await trainingUntil([...RUN, '--out', runDir], runDir, 3);
    process.kill(-(run.child.pid as number), 'SIGINT');
    expect(await run.exited).toBe(1);
    expect(run.stderr()).toMatch(/COORDINATOR_STOPPING: interrupted by SIGINT/);
    expect(run.stderr()).not.toMatch(/exited with SIGINT|its last lines/);
    expect(run.stderr()).not.toMatch(/^\s+at /m);
  }, 120_000);
});
