import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CallosumError, isCallosumError } from '@callosum/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CoordinatorEvent, parseMetricsLine } from './events.js';
import { cutUnfinishedLine, MetricsFile } from './metrics-file.js';
import { TraceFile } from './trace-file.js';

const event: CoordinatorEvent = { type: 'checkpoint', step: 5, path: '/x' };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'callosum-record-files-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What a record file reported: its log lines and its write failures. */
function recorder() {
  const lines: string[] = [];
  const failures: CallosumError[] = [];
  return {
    lines,
    failures,
    options: {
      log: (line: string) => lines.push(line),
      onWriteFailed: (error: CallosumError) => failures.push(error),
    },
  };
}

/**
 * A named pipe at `path` that a `cat` process drains: a file whose writes succeed until the reader goes
 * (`close`) and then fail (EPIPE), as a disk filling up mid-run makes them fail, without root. (A reader
 * in this process could not go: a read waiting on the pipe holds its stream open.)
 */
function drainedPipe(path: string): { received: () => string; close: () => Promise<void> } {
  execFileSync('mkfifo', [path]);
  const reader = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'ignore'] });
  let text = '';
  reader.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  const exited = once(reader, 'exit');
  return {
    received: () => text,
    close: async () => {
      reader.kill('SIGKILL');
      await exited;
    },
  };
}

describe('metrics.jsonl', () => {
  it('cuts off an unfinished last line (a write cut short) when it is reopened, and says so', async () => {
    const path = join(dir, 'metrics.jsonl');
    const whole = `${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`;
    await writeFile(path, `${whole}${whole}{"time":"2026-12-06T10:00:00.000Z","type":"st`);
    const { lines, options } = recorder();
    const file = new MetricsFile(path, options);
    file.write(event, new Date());
    await file.close();
    expect(lines).toEqual([
      `coordinator: ${path} ended in an unfinished line (45 bytes of a write cut short); removed it before appending`,
    ]);
    const text = await readFile(path, 'utf8');
    expect(text.startsWith(`${whole}${whole}`)).toBe(true);
    expect(
      text
        .split('\n')
        .slice(0, -1)
        .map((line) => parseMetricsLine(line).type),
    ).toEqual(['checkpoint', 'checkpoint', 'checkpoint']);
  });

  it('leaves a file that ends in a newline, an empty one and a missing one as they are', async () => {
    const path = join(dir, 'metrics.jsonl');
    expect(cutUnfinishedLine(path)).toBe(0);
    await writeFile(path, '');
    expect(cutUnfinishedLine(path)).toBe(0);
    await writeFile(path, '{"a":1}\n');
    expect(cutUnfinishedLine(path)).toBe(0);
    // A line longer than one read of the tail: all of it goes.
    await appendFile(path, 'x'.repeat(200_000));
    expect(cutUnfinishedLine(path)).toBe(200_000);
    expect(await readFile(path, 'utf8')).toBe('{"a":1}\n');
    await writeFile(path, 'no newline at all');
    expect(cutUnfinishedLine(path)).toBe(17);
    expect(await readFile(path, 'utf8')).toBe('');
  });

  it('on a full disk: the write fails with WRITE_FAILED naming the file, once, and nothing hangs', async () => {
    const path = join(dir, 'metrics.jsonl');
    await symlink('/dev/full', path);
    const { failures, options } = recorder();
    const file = new MetricsFile(path, options);
    file.write(event, new Date());
    const failure = await file.flushed().catch((error: unknown) => error);
    expect(isCallosumError(failure, 'WRITE_FAILED')).toBe(true);
    expect((failure as Error).message).toBe(
      `cannot write ${path}: no space left on the device holding ${dir}`,
    );
    file.write(event, new Date());
    await file.close();
    expect(failures).toEqual([failure]);
  });

  it('a write failing mid-run is reported once, and the lines before it are whole', async () => {
    const path = join(dir, 'metrics.jsonl');
    const pipe = drainedPipe(path);
    const { failures, options } = recorder();
    const file = new MetricsFile(path, options);
    file.write(event, new Date());
    await file.flushed();
    while (!pipe.received().endsWith('\n')) await new Promise((resolve) => setTimeout(resolve, 5));
    await pipe.close();
    for (let i = 0; i < 3; i++) file.write(event, new Date());
    await expect(file.flushed()).rejects.toThrow(`cannot write ${path}: EPIPE`);
    await file.close();
    expect(failures).toHaveLength(1);
    expect(parseMetricsLine(pipe.received().trim()).type).toBe('checkpoint');
  });
});

describe('the --trace file', () => {
  it('on a full disk fails at once, naming the file', async () => {
    const path = join(dir, 'trace.json');
    await symlink('/dev/full', path);
    const { options } = recorder();
    expect(() => new TraceFile(path, options)).toThrow(
      expect.objectContaining({
        code: 'WRITE_FAILED',
        message: `cannot write ${path}: no space left on the device holding ${dir}`,
      }),
    );
  });

  it('a write failing mid-run is reported once, and closing it does not hang', async () => {
    const path = join(dir, 'trace.json');
    const pipe = drainedPipe(path);
    const { failures, options } = recorder();
    const trace = new TraceFile(path, options);
    while (!pipe.received().includes('thread_sort_index'))
      await new Promise((resolve) => setTimeout(resolve, 5));
    await pipe.close();
    const worker = { worker: 'w1', name: 'one', address: '127.0.0.1:1', backend: 'cpu' } as const;
    for (let i = 0; i < 3; i++) trace.sink({ type: 'worker-joined', ...worker, worker: `w${i}` }, new Date());
    while (failures.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await trace.close();
    expect(failures).toHaveLength(1);
    expect(failures[0]?.code).toBe('WRITE_FAILED');
    expect(failures[0]?.message).toMatch(new RegExp(`^cannot write ${path}: EPIPE`));
  });
});
