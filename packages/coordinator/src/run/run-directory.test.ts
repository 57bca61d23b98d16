import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCallosumError, loadMnist, type MnistDataset } from '@callosum/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator.js';
import type { CoordinatorOptions } from '../options.js';
import { inlineWorker } from '../test-support/inline-worker.js';
import { RunFiles, storedSummary } from './run-directory.js';

// Real runs of a small model, one in-process worker over loopback (each test file sizes its own small
// run, so their configs look alike).
const training = {
  model: { name: 'mlp', options: { hidden: [8] } },
  batchSize: 32,
  maxSteps: 3,
  seed: 3,
  schedule: { kind: 'constant' as const },
  maxShift: 0,
};
let dataset: MnistDataset;
let root: string;

beforeAll(async () => {
  dataset = await loadMnist();
  root = await mkdtemp(join(tmpdir(), 'callosum-run-directory-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function runToEnd(options: Partial<CoordinatorOptions> & { outDir: string }) {
  const coordinator = await startCoordinator({ dataset, training, log: () => {}, ...options });
  const worker = inlineWorker(coordinator.url, { name: 'inline' });
  const summary = await coordinator.result;
  await worker;
  return summary;
}

async function startError(options: Partial<CoordinatorOptions> & { outDir: string }): Promise<Error> {
  try {
    const coordinator = await startCoordinator({ dataset, training, log: () => {}, ...options });
    await coordinator.stop('unexpected start');
  } catch (error) {
    return error as Error;
  }
  throw new Error('the coordinator started');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('a run directory belongs to one run', () => {
  it('refuses a new run in a directory holding another run, naming --resume and a new --out, and touches nothing', async () => {
    const outDir = join(root, 'taken');
    await runToEnd({ outDir });
    // Without its summary, the run looks stopped part-way: its checkpoints can be resumed.
    await rm(join(outDir, RunFiles.SUMMARY));
    const metricsBefore = await readFile(join(outDir, RunFiles.METRICS), 'utf8');
    const error = await startError({ outDir, training: { ...training, maxSteps: 2 } });
    expect(isCallosumError(error, 'INVALID_ARGUMENT')).toBe(true);
    expect(error.message).toContain(`already holds a run`);
    expect(error.message).toContain(`--resume ${outDir}`);
    expect(error.message).toContain('--out');
    expect(await readFile(join(outDir, RunFiles.METRICS), 'utf8')).toBe(metricsBefore);
  });

  it('does not offer --resume for a finished run, nor for one that stopped before its first checkpoint', async () => {
    const finished = join(root, 'taken-finished');
    await runToEnd({ outDir: finished });
    const refusal = await startError({ outDir: finished });
    expect(isCallosumError(refusal, 'INVALID_ARGUMENT')).toBe(true);
    expect(refusal.message).toContain('already holds a finished run');
    expect(refusal.message).toContain('--overwrite');
    expect(refusal.message).not.toContain('--resume');

    const early = join(root, 'taken-early');
    const stopped = await startCoordinator({ outDir: early, dataset, training, log: () => {} });
    await stopped.stop('test'); // no worker joined: no checkpoint
    const refusedAgain = await startError({ outDir: early });
    expect(refusedAgain.message).toMatch(
      /already holds a run's files \(.*\) but no checkpoint to continue it from/,
    );
    expect(refusedAgain.message).toContain('--overwrite');
    expect(refusedAgain.message).not.toContain('--resume');
    const resumed = await startError({ outDir: early, resume: true });
    expect(isCallosumError(resumed, 'ARTIFACT_INVALID')).toBe(true);
    expect(resumed.message).toMatch(/nothing to resume in .*taken-early: it holds no checkpoint/);
    expect(resumed.message).toContain(`--out ${early} --overwrite`);

    const empty = join(root, 'empty');
    await mkdir(empty);
    const nothing = await startError({ outDir: empty, resume: true });
    expect(isCallosumError(nothing, 'ARTIFACT_INVALID')).toBe(true);
    expect(nothing.message).toBe(`no run to resume in ${empty}: it holds no run files`);
  });

  it('with overwrite, moves the previous run aside instead of mixing the two', async () => {
    const outDir = join(root, 'overwritten');
    const first = await runToEnd({ outDir });
    const second = await runToEnd({ outDir, overwrite: true, training: { ...training, maxSteps: 2 } });
    expect(second.steps).toBe(2);
    const [aside, ...more] = (await readdir(outDir)).filter((name) => name.startsWith('replaced-'));
    expect(more).toEqual([]);
    const old = join(outDir, aside as string);
    expect((await storedSummary(old))?.steps).toBe(first.steps);
    const steps = (file: string) =>
      readFile(file, 'utf8').then((text) =>
        text.split('\n').filter((line) => line.includes('"type":"step"')),
      );
    expect(await steps(join(old, RunFiles.METRICS))).toHaveLength(3);
    expect(await steps(join(outDir, RunFiles.METRICS))).toHaveLength(2);
  });

  it('stores the summary of a finished run; resuming it says it is complete', async () => {
    const outDir = join(root, 'finished');
    const summary = await runToEnd({ outDir });
    expect(await storedSummary(outDir)).toEqual(JSON.parse(JSON.stringify(summary)));
    const error = await startError({ outDir, resume: true });
    expect(isCallosumError(error, 'RUN_ENDED')).toBe(true);
    expect(error.message).toMatch(/already complete/);
  });

  it("refuses to resume from a checkpoint of another run's config", async () => {
    const outDir = join(root, 'foreign');
    const stopped = await startCoordinator({ outDir, dataset, training, log: () => {} });
    // No worker: stopped while waiting, it has no checkpoint; give it one from a different run.
    await stopped.stop('test');
    const other = join(root, 'other');
    await runToEnd({ outDir: other, training: { ...training, seed: 4 } });
    const [checkpoint] = await readdir(join(other, RunFiles.CHECKPOINTS));
    await writeFile(
      join(outDir, RunFiles.CHECKPOINTS, checkpoint as string),
      await readFile(join(other, RunFiles.CHECKPOINTS, checkpoint as string)),
    );
    const error = await startError({ outDir, resume: true });
    expect(isCallosumError(error, 'ARTIFACT_INVALID')).toBe(true);
    expect(error.message).toMatch(/belongs to another run/);
  });

  it('a failed start leaves no directory behind, and resuming a missing directory does not create it', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const outDir = join(root, 'failed', 'start');
      const error = await startError({ outDir, port });
      expect((error as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
      expect(await exists(join(root, 'failed'))).toBe(false);
    } finally {
      blocker.close();
    }
    const missing = join(root, 'missing');
    const error = await startError({ outDir: missing, resume: true });
    expect(error.message).toBe(`no run directory ${missing} to resume`);
    expect(await exists(missing)).toBe(false);
  });

  it('an unwritable place is refused at once with a clear error (Node 20 would loop under /proc)', async () => {
    const started = Date.now();
    const error = await startError({ outDir: '/proc/callosum-run' });
    expect(error.message).toMatch(/cannot create the run directory \/proc\/callosum-run \(ENOENT\)/);
    expect(Date.now() - started).toBeLessThan(5_000);
    const file = join(root, 'a-file');
    await writeFile(file, '');
    expect((await startError({ outDir: join(file, 'run') })).message).toMatch(/ENOTDIR/);
    expect((await startError({ outDir: file, resume: true })).message).toMatch(/is a file/);
  });
});

describe('temporary files of interrupted writes', () => {
  /** No process has this pid: Linux hands out none at or above PID_MAX_LIMIT (2^22). */
  const GONE_PID = 2 ** 22 + 7;

  it('are removed when the directory is opened for a resume or a new run; a running writer’s, and other files, are kept', async () => {
    const outDir = join(root, 'stale');
    await runToEnd({ outDir });
    await rm(join(outDir, RunFiles.SUMMARY));
    // What a coordinator killed while writing (kill -9, a full disk before the fix) left behind.
    const stale = [
      join(outDir, `${RunFiles.SUMMARY}.${GONE_PID}.tmp`),
      join(outDir, RunFiles.CHECKPOINTS, `step-000000004.ckpt.${GONE_PID}.tmp`),
      join(outDir, RunFiles.MODEL, `weights.bin.${GONE_PID}.tmp`),
    ];
    const kept = [
      // Another process's write in progress (its pid runs: the test runner's parent).
      join(outDir, `${RunFiles.REPORT}.${process.ppid}.tmp`),
      // Not a file a run writes.
      join(outDir, RunFiles.CHECKPOINTS, `notes.txt.${GONE_PID}.tmp`),
    ];
    for (const path of [...stale, ...kept]) await writeFile(path, 'partial');
    const log: string[] = [];
    await runToEnd({ outDir, resume: true, log: (line) => log.push(line) });
    expect(log).toContain(
      `coordinator: removed 3 temporary files left by an interrupted write: ${stale.join(', ')}`,
    );
    for (const path of stale) expect(await exists(path), path).toBe(false);
    for (const path of kept) expect(await exists(path), path).toBe(true);

    const fresh = join(root, 'stale-new');
    await mkdir(fresh);
    const marker = join(fresh, `${RunFiles.MARKER}.${GONE_PID}.tmp`);
    await writeFile(marker, 'partial');
    const stopped = await startCoordinator({ outDir: fresh, dataset, training, log: () => {} });
    await stopped.stop('test');
    expect(await exists(marker)).toBe(false);
  });
});
