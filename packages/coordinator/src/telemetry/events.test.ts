import { readFile } from 'node:fs/promises';
import { loadMnist } from '@callosum/core';
import { describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator.js';
import {
  refusedUpgrade,
  runDirectoryPerTest,
  runWithWorkerProcesses,
} from '../test-support/worker-processes.js';
import { parseMetricsLine } from './events.js';

const newRunDirectory = runDirectoryPerTest('callosum-telemetry-');

describe('metrics.jsonl', () => {
  it('every line of a real run (two worker processes) is a member of the event union', async () => {
    const outDir = await newRunDirectory();
    const log: string[] = [];
    const token = 'telemetry-test-token-0123456789';
    const coordinator = await startCoordinator({
      outDir,
      dataset: await loadMnist(),
      token,
      minWorkers: 2,
      checkpointEverySteps: 5,
      training: {
        model: { name: 'mlp', options: { hidden: [16] } },
        batchSize: 32,
        maxSteps: 12,
        schedule: { kind: 'constant' },
        maxShift: 0,
      },
      log: (line) => log.push(line),
    });
    // A refused upgrade, so that kind of event is in the file too.
    await refusedUpgrade(coordinator.url);
    const { summary, exitCodes } = await runWithWorkerProcesses(coordinator, token, ['one', 'two']);
    expect(exitCodes).toEqual([0, 0]);
    // Finished means finished: no timer of the run is left to keep a process alive after it.
    expect(process.getActiveResourcesInfo()).not.toContain('Timeout');

    const lines = (await readFile(summary.metricsFile, 'utf8')).trim().split('\n');
    const events = lines.map((line) => parseMetricsLine(line));
    const types = new Set(events.map((event) => event.type));
    for (const type of ['auth-failure', 'worker-joined', 'step', 'checkpoint', 'evaluation', 'summary'])
      expect(types).toContain(type);
    expect(events.filter((event) => event.type === 'step')).toHaveLength(12);
    // The log shows each event it has a line for once: formatted by its sink, not written beside it.
    expect(log.filter((line) => line.includes(' joined (backend '))).toHaveLength(2);
    expect(log.filter((line) => line.includes('refused connection from'))).toHaveLength(1);
  });

  it('refuses a line of an unknown type, with a missing, extra or mistyped field, or without a time', () => {
    const time = new Date().toISOString();
    const good = { time, type: 'checkpoint', step: 5, path: '/x' };
    expect(parseMetricsLine(JSON.stringify(good))).toEqual(good);
    const bad = [
      { ...good, type: 'checkpointed' },
      { time, type: 'checkpoint', step: 5 },
      { ...good, extra: 1 },
      { ...good, step: '5' },
      { ...good, step: -1 },
      { type: 'checkpoint', step: 5, path: '/x' },
      { time, type: 'stopped', code: 'NOT_A_CODE', reason: 'x', step: 1 },
    ];
    for (const line of bad)
      expect(() => parseMetricsLine(JSON.stringify(line)), JSON.stringify(line)).toThrow();
  });
});
