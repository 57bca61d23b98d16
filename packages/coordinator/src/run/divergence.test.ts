import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeCheckpoint, isCallosumError, loadMnist } from '@callosum/core';
import { describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator.js';
import { parseMetricsLine } from '../telemetry/events.js';
import { runDirectoryPerTest, startWorkerProcess } from '../test-support/worker-processes.js';
import { DivergenceWatch } from './divergence.js';

describe('DivergenceWatch', () => {
  it('calls a step diverged only once every worker that could compute it found it non-finite', () => {
    const watch = new DivergenceWatch();
    expect(watch.nonFinite(4, 'w1', ['w1', 'w2'])).toBe(false);
    expect(watch.nonFinite(4, 'w1', ['w1', 'w2'])).toBe(false);
    // A report for another step starts over.
    expect(watch.nonFinite(5, 'w2', ['w1', 'w2'])).toBe(false);
    expect(watch.nonFinite(5, 'w1', ['w1', 'w2'])).toBe(true);
    expect(watch.nonFinite(6, 'w1', ['w1'])).toBe(true);
    expect(watch.nonFinite(7, 'w1', [])).toBe(false);
  });
});

const newRunDirectory = runDirectoryPerTest('callosum-diverged-');

describe('a diverging run (real worker processes)', () => {
  it('stops with TRAINING_DIVERGED naming the step and learning rate, advising a lower one; no worker is evicted, the checkpoint holds the last good step', async () => {
    const outDir = await newRunDirectory();
    const log: string[] = [];
    const coordinator = await startCoordinator({
      outDir,
      dataset: await loadMnist(),
      minWorkers: 2,
      training: {
        model: { name: 'mlp', options: { hidden: [16] } },
        batchSize: 64,
        maxSteps: 20,
        learningRate: 1e30,
        schedule: { kind: 'constant' },
        maxShift: 0,
      },
      log: (line) => log.push(line),
    });
    const exits = [startWorkerProcess(coordinator.url, 'one'), startWorkerProcess(coordinator.url, 'two')];
    const error = await coordinator.result.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(isCallosumError(error, 'TRAINING_DIVERGED')).toBe(true);
    expect((error as Error).message).toMatch(
      /^training diverged at step \d+ \(learning rate 1e\+30\): non-finite gradient\/loss on every worker; lower the learning rate \(learningRate, --lr\)$/,
    );
    const divergedAt = Number((error as Error).message.match(/step (\d+)/)?.[1]);
    // Both workers are told why and exit; neither was evicted as faulty.
    expect(await Promise.all(exits)).toEqual([1, 1]);
    const records = (await readFile(join(outDir, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => parseMetricsLine(line));
    expect(records.filter((record) => record.type === 'eviction')).toEqual([]);
    expect(log.join('\n')).not.toMatch(/evicting/);
    expect(records.find((record) => record.type === 'stopped')).toMatchObject({
      code: 'TRAINING_DIVERGED',
      step: divergedAt - 1,
    });
    // The bad update was never applied: the last step reported and checkpointed is the one before.
    const steps = records.flatMap((record) => (record.type === 'step' ? [record.step] : []));
    expect(steps.at(-1)).toBe(divergedAt - 1);
    const checkpoints = (await readdir(join(outDir, 'checkpoints'))).sort();
    const newest = join(outDir, 'checkpoints', checkpoints.at(-1) as string);
    const checkpoint = decodeCheckpoint(await readFile(newest), newest);
    expect(checkpoint.step).toBe(divergedAt - 1);
    expect(checkpoint.weights.every(Number.isFinite)).toBe(true);
  });
});
