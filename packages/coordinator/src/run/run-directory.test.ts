import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCallosumError, loadMnist, type MnistDataset, processIdentity } from '@callosum/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator.js';
import type { CoordinatorOptions } from '../options.js';
import { inlineWorker } from '../test-support/inline-worker.js';
import { RunFiles, storedModel, storedSummary } from './run-directory.js';

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

    // A run killed before its first checkpoint: its files, without a checkpoint or a summary.
    const early = join(root, 'taken-early');
    await runToEnd({ outDir: early });
    await rm(join(early, RunFiles.SUMMARY));
    await rm(join(early, RunFiles.CHECKPOINTS), { recursive: true });
    await mkdir(join(early, RunFiles.CHECKPOINTS));
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

  it('is used by one coordinator at a time: a second one (resuming it, or a new run there) is refused while the first runs', async () => {
    const outDir = join(root, 'in-use');
    const first = await startCoordinator({
      dataset,
      training,
      log: () => {},
      outDir,
      checkpointEverySteps: 1,
    });
    const worker = inlineWorker(first.url, { name: 'inline' });
    await first.result;
    await worker;
    // A finished run is reported, not locked: the lock went with its coordinator.
    expect(await exists(join(outDir, 'coordinator.lock'))).toBe(false);

    const running = await startCoordinator({
      dataset,
      training: { ...training, maxSteps: 1_000 },
      log: () => {},
      outDir: join(root, 'in-use-2'),
    });
    for (const options of [{ resume: true }, { overwrite: true }, {}]) {
      const error = await startError({ outDir: join(root, 'in-use-2'), ...options });
      expect(error.message).toBe(
        `${join(root, 'in-use-2')} is in use by another coordinator (pid ${process.pid} on this machine): stop it first, or use another --out (outDir from a program)`,
      );
    }
    await running.stop('test over');
    await running.result.catch(() => {});
  });

  it('two runs starting at once: in one new directory, the second is told it is in use (not to choose a writable one); in two under one new parent, both start', async () => {
    const outDir = join(root, 'at-once', 'run');
    const started = await Promise.allSettled([
      startCoordinator({ dataset, training, log: () => {}, outDir }),
      startCoordinator({ dataset, training, log: () => {}, outDir }),
    ]);
    const winners = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const refusals = started.flatMap((result) =>
      result.status === 'rejected' ? [result.reason as Error] : [],
    );
    expect(winners).toHaveLength(1);
    expect(refusals).toHaveLength(1);
    expect(isCallosumError(refusals[0], 'INVALID_ARGUMENT')).toBe(true);
    // Which the second finds first depends on timing: the directory (or its checkpoints) the first made, or its lock.
    expect(refusals[0]?.message).toMatch(
      new RegExp(
        `^${outDir} is in use by another (run starting in it at the same time \\(it created ${outDir}(/checkpoints)? first: EEXIST\\): ` +
          'start this run in another directory \\(--out; outDir from a program\\), or wait for that one to end$|' +
          `coordinator \\(pid ${process.pid} on this machine\\))`,
      ),
    );
    for (const coordinator of winners) {
      await coordinator.stop('test over');
      await coordinator.result.catch(() => {});
    }

    // A parent both make: the one that finds it made already goes on into its own directory.
    const parent = join(root, 'at-once-parent', 'runs');
    const both = await Promise.all(
      ['a', 'b'].map((name) =>
        startCoordinator({ dataset, training, log: () => {}, outDir: join(parent, name) }),
      ),
    );
    expect((await readdir(parent)).sort()).toEqual(['a', 'b']);
    for (const coordinator of both) {
      await coordinator.stop('test over');
      await coordinator.result.catch(() => {});
    }
  });

  it('takes over the lock of a coordinator that is gone: one whose pid runs no more here, or runs another process now (or is this process, which does not hold it: a restarted container), or one on another host (said in the log)', async () => {
    const outDir = join(root, 'stale-lock');
    for (const [holder, said] of [
      [{ pid: 2 ** 22 + 12_345, host: hostname() }, false],
      // A running process, but not the one that took the lock: its pid was given to another since (told
      // apart where /proc says which process a pid is).
      ...(processIdentity(process.ppid) === undefined
        ? []
        : [
            [
              { pid: process.ppid, host: hostname(), process: `${processIdentity(process.ppid)}0` },
              false,
            ] as const,
          ]),
      // Left by an earlier process with this pid: a container's coordinator is pid 1 again after a restart.
      [{ pid: process.pid, host: hostname() }, false],
      [{ pid: process.pid, host: 'another-node' }, true],
    ] as const) {
      await mkdir(outDir, { recursive: true });
      await writeFile(join(outDir, 'coordinator.lock'), JSON.stringify(holder));
      const log: string[] = [];
      const coordinator = await startCoordinator({
        dataset,
        training,
        log: (line) => log.push(line),
        outDir,
        overwrite: true,
      });
      const worker = inlineWorker(coordinator.url, { name: 'inline' });
      await coordinator.result;
      await worker;
      expect(log.some((line) => line.includes('names a coordinator on another-node'))).toBe(said);
      expect(await exists(join(outDir, 'coordinator.lock'))).toBe(false);
    }
  });

  it('refuses a lock whose process still runs, named by its pid and (on Linux) which process that is', async () => {
    const outDir = join(root, 'held-lock');
    await mkdir(outDir, { recursive: true });
    const holder = { pid: process.ppid, host: hostname(), process: processIdentity(process.ppid) };
    await writeFile(join(outDir, 'coordinator.lock'), JSON.stringify(holder));
    await expect(startCoordinator({ dataset, training, log: () => {}, outDir })).rejects.toThrow(
      `${outDir} is in use by another coordinator (pid ${process.ppid} on this machine)`,
    );
    expect(JSON.parse(await readFile(join(outDir, 'coordinator.lock'), 'utf8'))).toEqual(holder);
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
    expect(error.message).toMatch(
      /already complete \(its summary: .*summary\.json\); to train it again, move it aside with --overwrite \(overwrite: true from a program\)$/,
    );
  });

  it('records the model the run trains, read from the newest checkpoint for a marker from before it did, which a resume completes', async () => {
    const outDir = join(root, 'model-recorded');
    await runToEnd({ outDir });
    expect(await storedModel(outDir)).toBe('mlp');
    // As a run stopped at its last checkpoint, whose marker was written before the model was recorded.
    const markerPath = join(outDir, RunFiles.MARKER);
    const { model: _, ...older } = JSON.parse(await readFile(markerPath, 'utf8')) as Record<string, unknown>;
    await writeFile(markerPath, JSON.stringify(older));
    await rm(join(outDir, RunFiles.SUMMARY));
    expect(await storedModel(outDir)).toBe('mlp');
    await runToEnd({ outDir, resume: true });
    expect(JSON.parse(await readFile(markerPath, 'utf8')).model).toBe('mlp');
  });

  it('records the digest of the training data; a resume on other samples of the same count says so, trains on them and records them', async () => {
    const outDir = join(root, 'other-data');
    const lines: string[] = [];
    const first = await startCoordinator({
      outDir,
      dataset,
      training: { ...training, maxSteps: 6 },
      log: () => {},
      onStep: (report) => {
        if (report.step === 2) void first.stop('test: stop mid-run');
      },
    });
    const worker = inlineWorker(first.url);
    await expect(first.result).rejects.toThrow(/stop mid-run/);
    const marker = async () => JSON.parse(await readFile(join(outDir, RunFiles.MARKER), 'utf8'));
    const recorded = (await marker()).trainingData;
    expect(recorded).toEqual({
      samples: dataset.train.count,
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });

    // One label changed: the same count, other data.
    const labels = Uint8Array.from(dataset.train.labels);
    labels[0] = ((labels[0] as number) + 1) % 10;
    const changed = { ...dataset, train: { ...dataset.train, labels } };
    const resumed = await startCoordinator({
      outDir,
      dataset: changed,
      resume: true,
      port: first.port,
      log: (line) => lines.push(line),
    });
    expect((await resumed.result).steps).toBe(6);
    await worker;
    expect(lines.filter((line) => line.includes('warning: the training data differ'))).toEqual([
      `coordinator: warning: the training data differ from those the run trained on so far (${dataset.train.count} samples, SHA-256 ${recorded.sha256.slice(0, 12)}…; now ${dataset.train.count}, ${(await marker()).trainingData.sha256.slice(0, 12)}…): its steps from here train on these data; resume with the data it started with for the run it would have been`,
    ]);
    expect((await marker()).trainingData.sha256).not.toBe(recorded.sha256);
  });

  it("refuses to resume from a checkpoint of another run's config", async () => {
    const outDir = join(root, 'foreign');
    await runToEnd({ outDir });
    // Stopped part-way (no summary), with a checkpoint of a different run in place of its own.
    await rm(join(outDir, RunFiles.SUMMARY));
    await rm(join(outDir, RunFiles.CHECKPOINTS), { recursive: true });
    await mkdir(join(outDir, RunFiles.CHECKPOINTS));
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

  it('a run stopped before its first step leaves the directory as it found it, the previous run put back', async () => {
    const created = join(root, 'never-started', 'run');
    const log: string[] = [];
    const nobody = await startCoordinator({
      outDir: created,
      dataset,
      training,
      log: (line) => log.push(line),
    });
    await nobody.stop('test: no worker came'); // no worker joined
    expect(await exists(join(root, 'never-started'))).toBe(false);
    expect(log.join('\n')).toContain(`no step was trained: removed the run's files from ${created}`);

    // With overwrite, the previous run's files were moved aside: they are put back.
    const outDir = join(root, 'overwritten-unstarted');
    const finished = await runToEnd({ outDir });
    const before = (await readdir(outDir)).sort();
    const replacing = await startCoordinator({ outDir, dataset, training, overwrite: true, log: () => {} });
    await replacing.stop('test: no worker came');
    expect((await readdir(outDir)).sort()).toEqual(before);
    expect(await storedSummary(outDir)).toEqual(JSON.parse(JSON.stringify(finished)));
  });

  it('stores the checkpoint interval, topology and wire dtype with the run; a resume keeps them unless given others', async () => {
    const outDir = join(root, 'interval');
    const longer = { ...training, maxSteps: 6 };
    const stoppedAt = 3;
    const first = await startCoordinator({
      outDir,
      dataset,
      training: longer,
      checkpointEverySteps: 2,
      topology: 'ring',
      wireDtype: 'bfloat16',
      log: () => {},
      onStep: (report) => {
        if (report.step === stoppedAt) void first.stop('test: stop mid-run');
      },
    });
    // Told COORDINATOR_STOPPING, the worker waits for the resumed coordinator on the same port.
    const worker = inlineWorker(first.url);
    await expect(first.result).rejects.toThrow(/stop mid-run/);
    const marker = () => readFile(join(outDir, RunFiles.MARKER), 'utf8').then((text) => JSON.parse(text));
    expect((await marker()).settings).toEqual({
      checkpointEverySteps: 2,
      topology: 'ring',
      wireDtype: 'bfloat16',
      peerTls: false,
    });

    // A resume given other settings that does not start (given up while its task loads) stores none.
    const givenUp = startCoordinator({
      outDir,
      dataset,
      resume: true,
      checkpointEverySteps: 7,
      topology: 'star',
      signal: AbortSignal.abort('test: given up'),
      log: () => {},
    });
    await expect(givenUp).rejects.toThrow(/test: given up/);
    expect((await marker()).settings).toEqual({
      checkpointEverySteps: 2,
      topology: 'ring',
      wireDtype: 'bfloat16',
      peerTls: false,
    });

    const log: string[] = [];
    const resumed = await startCoordinator({
      outDir,
      dataset,
      resume: true,
      port: first.port,
      checkpointEverySteps: 1,
      wireDtype: 'float16',
      log: (line) => log.push(line),
    });
    expect((await resumed.result).steps).toBe(6);
    await worker;
    expect(log.join('\n')).toContain(
      'the run continues with other settings than it stored: checkpointEverySteps 2 → 1, wireDtype bfloat16 → float16',
    );
    expect(log.join('\n')).not.toContain('the training data differ');
    const checkpointed = (await readFile(join(outDir, RunFiles.METRICS), 'utf8'))
      .split('\n')
      .filter((line) => line.includes('"type":"checkpoint"'))
      .map((line) => (JSON.parse(line) as { step: number }).step);
    expect(checkpointed).toEqual([2, stoppedAt, 4, 5, 6]);
    // The topology, not given, stays the run's.
    expect((await marker()).settings).toEqual({
      checkpointEverySteps: 1,
      topology: 'ring',
      wireDtype: 'float16',
      peerTls: false,
    });
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
