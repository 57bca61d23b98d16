import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCallosumError, loadMnist, type MnistDataset } from '@callosum/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator.js';
import { writeRunReport } from '../dashboard/run-report.js';
import type { CoordinatorOptions } from '../options.js';
import { parseMetricsLine } from '../telemetry/events.js';
import { inlineWorker } from '../test-support/inline-worker.js';
import { RunFiles } from './run-directory.js';

// Real runs of a small model with one in-process worker over loopback, writing real files; the
// failing writes are real too: a file that is a link to /dev/full (ENOSPC on every write) or a named
// pipe whose reader goes away mid-run (EPIPE), so none of this needs root.
const training = {
  model: { name: 'mlp', options: { hidden: [8] } },
  batchSize: 32,
  maxSteps: 3,
  seed: 5,
  schedule: { kind: 'constant' as const },
  maxShift: 0,
};
let dataset: MnistDataset;
let root: string;

beforeAll(async () => {
  dataset = await loadMnist();
  root = await mkdtemp(join(tmpdir(), 'callosum-write-failure-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function options(outDir: string, log: string[], extra: Partial<CoordinatorOptions> = {}): CoordinatorOptions {
  return { outDir, dataset, training, log: (line) => log.push(line), liveViews: false, ...extra };
}

/** A run stopped after step 3 with its newest checkpoint at step 2, as a stop leaves it: resumable. */
async function resumableRun(name: string): Promise<string> {
  const outDir = join(root, name);
  const coordinator = await startCoordinator(options(outDir, [], { checkpointEverySteps: 2 }));
  const worker = inlineWorker(coordinator.url);
  await coordinator.result;
  await worker;
  // Without its summary, the run looks stopped part-way, after its step-2 checkpoint.
  await rm(join(outDir, RunFiles.SUMMARY));
  return outDir;
}

async function metricsLines(outDir: string) {
  const text = await readFile(join(outDir, RunFiles.METRICS), 'utf8');
  return text.trimEnd().split('\n').map(parseMetricsLine);
}

describe('a write that fails stops the run with the file named, never an unhandled error', () => {
  it('the --trace file failing mid-run (its reader gone: EPIPE): WRITE_FAILED after a checkpoint, and the worker is told', async () => {
    const outDir = join(root, 'trace-fails');
    const tracePath = join(root, 'trace-pipe');
    execFileSync('mkfifo', [tracePath]);
    const reader = spawn('cat', [tracePath], { stdio: ['ignore', 'ignore', 'ignore'] });
    const readerGone = once(reader, 'exit');
    const log: string[] = [];
    const coordinator = await startCoordinator(
      options(outDir, log, {
        traceFile: tracePath,
        training: { ...training, maxSteps: 10_000 },
        // The disk fills up after step 3: the trace's next write fails.
        onStep: async (report) => {
          if (report.step !== 3) return;
          reader.kill('SIGKILL');
          await readerGone;
        },
      }),
    );
    const worker = inlineWorker(coordinator.url);
    const failure = await coordinator.result.catch((error: unknown) => error);
    expect(isCallosumError(failure, 'WRITE_FAILED'), String(failure)).toBe(true);
    expect((failure as Error).message).toBe(`cannot write ${tracePath}: EPIPE: broken pipe, write`);
    expect(await worker).toMatchObject({
      exitCode: 1,
      reason: `WRITE_FAILED: on the coordinator: cannot write ${tracePath}: EPIPE: broken pipe, write`,
    });
    // Stopped as a signal stops it: the reason recorded, then the progress checkpointed.
    const lines = await metricsLines(outDir);
    const stopped = lines.findIndex((line) => line.type === 'stopped');
    expect(lines[stopped]).toMatchObject({ type: 'stopped', code: 'WRITE_FAILED' });
    const checkpoint = lines.slice(stopped).find((line) => line.type === 'checkpoint');
    expect(checkpoint?.type === 'checkpoint' && checkpoint.step).toBeGreaterThanOrEqual(3);
    expect(await readdir(join(outDir, RunFiles.CHECKPOINTS))).toHaveLength(1);
  });

  it('a metrics.jsonl on a full disk fails the resume at its start, naming the file and its directory', async () => {
    const outDir = await resumableRun('metrics-full');
    await rm(join(outDir, RunFiles.METRICS));
    await symlink('/dev/full', join(outDir, RunFiles.METRICS));
    const failure = await startCoordinator({ ...options(outDir, []), resume: true }).catch(
      (error: unknown) => error,
    );
    expect(isCallosumError(failure, 'WRITE_FAILED'), String(failure)).toBe(true);
    expect((failure as Error).message).toBe(
      `cannot write ${join(outDir, RunFiles.METRICS)}: no space left on the device holding ${outDir}`,
    );
  });
});

describe('resuming after a write cut short', () => {
  it('cuts the unfinished last line off metrics.jsonl before appending, says so, and the report reads the whole run', async () => {
    const outDir = await resumableRun('half-line');
    const metricsPath = join(outDir, RunFiles.METRICS);
    // What a full disk leaves: the start of a line, without its newline.
    await appendFile(metricsPath, '{"time":"2026-12-06T10:00:00.000Z","type":"step","step":3,"totalSt');
    const log: string[] = [];
    const coordinator = await startCoordinator({ ...options(outDir, log), resume: true });
    const worker = inlineWorker(coordinator.url);
    expect((await coordinator.result).steps).toBe(3);
    await worker;
    // The report reads every line (it refuses a line with another appended to its half).
    await expect(writeRunReport({ runDir: outDir })).resolves.toBe(join(outDir, RunFiles.REPORT));
    const types = (await metricsLines(outDir)).map((line) => line.type);
    expect(types).toContain('resumed');
    expect(types.at(-1)).toBe('summary');
    expect(log).toContain(
      `coordinator: ${metricsPath} ended in an unfinished line (66 bytes of a write cut short); removed it before appending`,
    );
  });
});
