import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isCallosumError } from '../errors.js';
import { removeStaleTemporaryFiles, writeFileAtomically } from './atomic-file.js';
import { describeFileError } from './file-errors.js';
import { GONE_PID, onFullDisk } from './test-support.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'callosum-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomically on a full disk', () => {
  for (const durable of [false, true]) {
    it(`${durable ? '(durable) ' : ''}fails with WRITE_FAILED naming the file and its directory, and leaves nothing behind`, async () => {
      const path = join(dir, 'summary.json');
      await writeFile(path, 'old');
      await onFullDisk(path);
      const failure = await writeFileAtomically(path, 'new', { durable }).catch((error: unknown) => error);
      expect(isCallosumError(failure, 'WRITE_FAILED')).toBe(true);
      expect((failure as Error).message).toBe(
        `cannot write ${path}: no space left on the device holding ${dir}`,
      );
      // The old content stays, and the temporary file is gone: a full disk is no fuller than before.
      expect(await readdir(dir)).toEqual(['summary.json']);
      expect(await readFile(path, 'utf8')).toBe('old');
    });
  }

  it('names a missing directory as the directory, never the temporary file', async () => {
    const path = join(dir, 'gone', 'model.json');
    await expect(writeFileAtomically(path, '{}')).rejects.toThrow(
      `cannot write ${path}: ${join(dir, 'gone')} does not exist`,
    );
  });
});

describe('describeFileError', () => {
  it('names the path it is given, else the error’s own, and never an empty one', () => {
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    expect(describeFileError(full, '/runs/a')).toBe('no space left on the device holding /runs/a');
    expect(describeFileError(full)).toBe('no space left on the device');
    expect(describeFileError(Object.assign(full, { path: '' }))).toBe('no space left on the device');
    expect(describeFileError(Object.assign(new Error('x'), { code: 'EROFS', path: '/ro' }))).toBe(
      '/ro is on a read-only file system',
    );
    expect(describeFileError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBeUndefined();
  });
});

describe('removeStaleTemporaryFiles', () => {
  it('removes the temporary files of the named files whose writer is gone (or had this pid), and nothing else', async () => {
    const checkpoints = join(dir, 'checkpoints');
    await mkdir(checkpoints);
    const names = [
      `step-000000040.ckpt.${GONE_PID}.tmp`, // a writer killed mid-write: removed
      `step-000000050.ckpt.${process.pid}.tmp`, // an earlier process with this pid (a restarted container): removed
      `step-000000060.ckpt.${process.ppid}.tmp`, // a writer still running: kept
      `notes.txt.${GONE_PID}.tmp`, // not a file the caller writes: kept
      'step-000000070.ckpt.tmp', // not an atomic write's name: kept
      'step-000000040.ckpt',
    ];
    for (const name of names) await writeFile(join(checkpoints, name), 'x');
    const isCheckpoint = (name: string) => /^step-\d{9}\.ckpt$/.test(name);
    const removed = await removeStaleTemporaryFiles(checkpoints, isCheckpoint);
    expect(removed.sort()).toEqual(
      [
        join(checkpoints, `step-000000040.ckpt.${GONE_PID}.tmp`),
        join(checkpoints, `step-000000050.ckpt.${process.pid}.tmp`),
      ].sort(),
    );
    expect((await readdir(checkpoints)).sort()).toEqual(names.slice(2).sort());
    expect(await removeStaleTemporaryFiles(join(dir, 'missing'), isCheckpoint)).toEqual([]);
  });
});
