import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { SHORT_RUN, temporaryDirectory } from './processes.js';
import { finishedShortRun } from './shared-run.js';

// The README's first command is `pnpm install && pnpm cli train --workers 4`, its second `pnpm test`.
// These tests run the parts of them that printed a notice on a fresh clone.

const REPOSITORY_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

let root: string;
beforeAll(async () => {
  root = await temporaryDirectory('quiet-first-run');
});

/** What a clone of this working tree holds: the tracked files (as they are now) and new, unignored ones. */
async function cloneWorkingTree(into: string): Promise<void> {
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: REPOSITORY_ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  for (const file of stdout.split('\0').filter((name) => name !== '')) {
    await mkdir(dirname(join(into, file)), { recursive: true });
    await copyFile(join(REPOSITORY_ROOT, file), join(into, file)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error; // deleted in the working tree, not yet in git
    });
  }
}

describe('a quiet first run: the README commands print no notices on a fresh clone', () => {
  it('`pnpm install` decides every build script (no "Ignored build scripts" box) and warns about nothing', async () => {
    const clone = join(root, 'clone');
    await cloneWorkingTree(clone);
    // The store this checkout was installed from (pnpm writes .modules.yaml as JSON) has every package, so
    // the install needs no network.
    const { storeDir } = JSON.parse(
      await readFile(join(REPOSITORY_ROOT, 'node_modules/.modules.yaml'), 'utf8'),
    );
    const { stdout, stderr } = await run(
      'pnpm',
      ['install', '--offline', '--frozen-lockfile', '--store-dir', storeDir],
      { cwd: clone },
    );
    const output = stdout + stderr;
    expect(output).toMatch(/^Done in /m);
    expect(output).not.toMatch(/Ignored build scripts/);
    expect(output).not.toMatch(/\bWARN\b/);
  });

  it('`pnpm cli` and `pnpm test` on a machine turbo has never seen print no telemetry notice', async () => {
    // A home turbo has no config in is what a fresh machine has: turbo then announces its telemetry.
    const home = join(root, 'fresh-home');
    await mkdir(home);
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config') };
    // The user's own opt-outs must not make this pass.
    for (const name of ['TURBO_TELEMETRY_DISABLED', 'TURBO_TELEMETRY_MESSAGE_DISABLED', 'DO_NOT_TRACK']) {
      delete env[name];
    }
    const cli = await run('pnpm', ['-s', 'cli', '--version'], { cwd: REPOSITORY_ROOT, env });
    expect(cli.stdout.trim()).toMatch(/^\d+\.\d+\.\d+ \(protocol \d+\.\d+\)$/);
    expect(cli.stderr).not.toMatch(/telemetry/i);
    // The test command itself, with turbo planning its tasks instead of running them.
    const test = await run('pnpm', ['-s', 'test', '--dry-run'], { cwd: REPOSITORY_ROOT, env });
    expect(test.stdout).toContain('Tasks to Run');
    expect(test.stdout + test.stderr).not.toMatch(/telemetry/i);
  });

  it('`callosum train` prints no TF.js advert for its node backend', async () => {
    const { output: train } = await finishedShortRun();
    expect(train.code, train.stderr).toBe(0);
    expect(train.stderr).toMatch(new RegExp(`^step ${SHORT_RUN.steps}/${SHORT_RUN.steps} `, 'm'));
    expect(train.stderr).not.toContain('looks like you are running TensorFlow.js');
  });
});
