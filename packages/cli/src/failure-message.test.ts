import { CallosumError, ErrorCodes } from '@callosum/core';
import { describe, expect, it } from 'vitest';
import { failureMessage } from './failure-message.js';

const refusal = (message: string) => new CallosumError(ErrorCodes.INVALID_ARGUMENT, message);
const given = new Set(['--min-workers', '--max-workers', '--batch-size']);

describe('failureMessage names the flags the user gave, in the libraries’ settings refusals', () => {
  it('writes an option name as its flag when that flag was given', () => {
    expect(
      failureMessage(
        refusal('coordinator options: minWorkers must be at most maxWorkers (2), got 3'),
        false,
        given,
      ),
    ).toBe('INVALID_ARGUMENT: coordinator options: --min-workers must be at most --max-workers (2), got 3');
  });

  it('leaves names that no given flag set, and anything that is not an option name', () => {
    const cases = [
      // not given as a flag (e.g. a task's default)
      'training config: microBatchSize must be an integer in 1..128, got 1000',
      // not a settings refusal: a path, a task's option key, an explanation that names its flag already
      'no run directory runs/batchSize-256 to resume',
      'model cnn has no option "batchSize"; options: none',
      'maxShift (--max-shift) shifts images; task t is not an image task, so it must be 0',
      // inside a settings refusal: a path and a quoted value
      'training config: batchSize is read from /data/batchSize/x and "batchSize"',
    ];
    expect(cases.map((message) => failureMessage(refusal(message), false, given))).toEqual([
      `INVALID_ARGUMENT: ${cases[0]}`,
      `INVALID_ARGUMENT: ${cases[1]}`,
      `INVALID_ARGUMENT: ${cases[2]}`,
      `INVALID_ARGUMENT: ${cases[3]}`,
      'INVALID_ARGUMENT: training config: --batch-size is read from /data/batchSize/x and "batchSize"',
    ]);
  });
});

describe('failureMessage for a system error about a file', () => {
  const systemError = (code: string, path?: string) =>
    Object.assign(
      new Error(`${code}: something, write`),
      { code, syscall: 'write' },
      path === undefined ? {} : { path },
    );

  it('names the path Node gave, and leaves it out, never empty, when Node gave none (a write to an open file)', () => {
    expect(failureMessage(systemError('ENOSPC', '/runs/a'), false)).toBe(
      'no space left on the device holding /runs/a: free space or choose another --out',
    );
    expect(failureMessage(systemError('ENOSPC'), false)).toBe(
      'no space left on the device: free space or choose another --out',
    );
    expect(failureMessage(systemError('EACCES', '/runs/a'), false)).toBe(
      'permission denied for /runs/a: choose a place you can write (--out) or read',
    );
  });

  it('prints what the coordinator says of a write that failed: the file and its directory', () => {
    const failure = new CallosumError(
      ErrorCodes.WRITE_FAILED,
      'cannot write /runs/a/checkpoints/step-000000040.ckpt: no space left on the device holding /runs/a/checkpoints',
    );
    expect(failureMessage(failure, false)).toBe(`WRITE_FAILED: ${failure.message}`);
  });
});
