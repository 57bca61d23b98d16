import { spawn } from 'node:child_process';
import { appendFile, readdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_ENTRY, lastJsonLine, runCli, SHORT_RUN, shortRun, temporaryDirectory } from './processes.js';

/** No process has this pid: Linux hands out none at or above PID_MAX_LIMIT (2^22). */
const GONE_PID = 2 ** 22 + 7;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

// A full disk without root: a file Callosum is about to write is a link to /dev/full, where every write
// fails with ENOSPC. The coordinator of `callosum train` is the CLI process, so its atomic write of a
// checkpoint goes through `<checkpoint>.<the CLI's pid>.tmp`, which the test links to /dev/full once
// the run has opened its directory.
describe('a full disk', () => {
  it('stops the run naming the file and its directory, leaves nothing behind and prints the resume command, which then continues the run', async () => {
    const runDir = await temporaryDirectory('disk-full');
    const checkpoints = join(runDir, 'checkpoints');
    const run = spawn(
      process.execPath,
      [CLI_ENTRY, 'train', ...shortRun(), '--checkpoint-every', '5', '--out', runDir],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    run.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => run.once('exit', (code) => resolve(code)));
    // metrics.jsonl exists once the directory is opened (and its stale files removed), seconds before
    // the workers have loaded and step 10 is checkpointed.
    while (!(await exists(join(runDir, 'metrics.jsonl'))))
      await new Promise((resolve) => setTimeout(resolve, 20));
    await symlink('/dev/full', join(checkpoints, `step-000000010.ckpt.${run.pid}.tmp`));

    expect(await exited, stderr).toBe(1);
    const checkpoint = join(checkpoints, 'step-000000010.ckpt');
    expect(stderr).toContain(
      `callosum: WRITE_FAILED: cannot write ${checkpoint}: no space left on the device holding ${checkpoints}\n`,
    );
    // The workers are told the same, as the coordinator's: no INTERNAL (a bug), no path left empty.
    expect(stderr).toContain(`worker: WRITE_FAILED: on the coordinator: cannot write ${checkpoint}`);
    expect(stderr).not.toMatch(/INTERNAL|holding :|Unhandled/);
    // The failed write took its temporary file with it; the step-5 checkpoint is there to resume.
    expect((await readdir(checkpoints)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    const command =
      /^callosum: stopped; once the file can be written again, continue with: (callosum train .*)$/m.exec(
        stderr,
      )?.[1];
    expect(command, stderr).toMatch(new RegExp(`--resume ${runDir}$`));
    const resume = (command as string).split(' ').slice(1);

    // metrics.jsonl on a full disk: the resume stops at its start, naming it, and says how to continue.
    const metrics = join(runDir, 'metrics.jsonl');
    await rename(metrics, `${metrics}.kept`);
    await symlink('/dev/full', metrics);
    const refused = await runCli(resume);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toContain(
      `callosum: WRITE_FAILED: cannot write ${metrics}: no space left on the device holding ${runDir}\n`,
    );
    expect(refused.stderr).toContain(`continue with: ${command}\n`);
    await rename(`${metrics}.kept`, metrics);

    // Space freed. What a full disk or a kill -9 leaves: metrics.jsonl ending in half a line, and a
    // checkpoint's temporary file of a process that is gone.
    await appendFile(metrics, '{"time":"2026-12-06T10:00:00.000Z","type":"step","step":11,"tot');
    const stale = join(checkpoints, `step-000000015.ckpt.${GONE_PID}.tmp`);
    await writeFile(stale, Buffer.alloc(100_000));
    const resumed = await runCli([...resume, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(lastJsonLine<{ steps: number }>(resumed).steps).toBe(SHORT_RUN.steps);
    expect(resumed.stderr).toContain(
      `coordinator: ${metrics} ended in an unfinished line (63 bytes of a write cut short); removed it before appending`,
    );
    expect(resumed.stderr).toContain(
      `coordinator: removed a temporary file left by an interrupted write: ${stale}`,
    );
    expect(await exists(stale)).toBe(false);

    // The whole run, both parts, is one readable record.
    const report = await runCli(['report', runDir, '--output', join(runDir, 'report.html')]);
    expect(report.code, report.stderr).toBe(0);
    const lines = (await readFile(metrics, 'utf8')).trimEnd().split('\n');
    expect(lines.filter((line) => line.includes('"type":"step"')).length).toBeGreaterThanOrEqual(
      SHORT_RUN.steps,
    );
  }, 240_000);
});
