import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { queryNvidiaSmi } from './gpu-detection.js';

let fakeBin: string;
beforeEach(async () => {
  fakeBin = await mkdtemp(join(tmpdir(), 'callosum-fake-nvidia-smi-'));
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await rm(fakeBin, { recursive: true, force: true });
});

/** Puts a fake `nvidia-smi` running `body` (sh) first on PATH; it records its arguments next to itself. */
async function fakeNvidiaSmi(body: string): Promise<void> {
  const script = join(fakeBin, 'nvidia-smi');
  await writeFile(script, `#!/bin/sh\necho "$@" > "${fakeBin}/arguments"\n${body}\n`);
  await chmod(script, 0o755);
  vi.stubEnv('PATH', `${fakeBin}:${process.env.PATH ?? ''}`);
}

describe('queryNvidiaSmi, with a fake nvidia-smi', () => {
  it('reporting 2 GPUs: their indices, asked for as CSV without a header', async () => {
    await fakeNvidiaSmi(`printf '0\\n1\\n'`);
    expect(await queryNvidiaSmi()).toEqual({ kind: 'listed', lines: ['0', '1'] });
    expect((await readFile(join(fakeBin, 'arguments'), 'utf8')).trim()).toBe(
      '--query-gpu=index --format=csv,noheader',
    );
  });

  it('that exits 1: failed, with the exit code', async () => {
    await fakeNvidiaSmi(`echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'
exit 1`);
    expect(await queryNvidiaSmi()).toEqual({ kind: 'failed', reason: 'nvidia-smi exited with 1' });
  });

  it('that hangs, holding its output open in a child of its own: failed once the timeout passes', async () => {
    // The background sleep keeps the output pipe open after nvidia-smi itself (the exec'd sleep) is killed.
    await fakeNvidiaSmi(`sleep 10 &\necho $! > "${fakeBin}/holder"\nexec sleep 10`);
    const started = performance.now();
    try {
      expect(await queryNvidiaSmi(300)).toEqual({
        kind: 'failed',
        reason: 'nvidia-smi did not answer within 0.3 s',
      });
      expect(performance.now() - started).toBeLessThan(3_000);
    } finally {
      process.kill(Number(await readFile(join(fakeBin, 'holder'), 'utf8')));
    }
  });

  it('and none on PATH: absent', async () => {
    vi.stubEnv('PATH', fakeBin);
    expect(await queryNvidiaSmi()).toEqual({ kind: 'absent' });
  });
});
