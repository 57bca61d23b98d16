import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCallosumError } from '@callosum/core';
import { describe, expect, it } from 'vitest';
import { startCoordinator } from './coordinator.js';
import { COORDINATOR_DEFAULTS, changedStoredSettings, resolveCoordinatorSettings } from './settings.js';

function problemWith(options: Record<string, unknown>): string {
  try {
    resolveCoordinatorSettings({ outDir: 'unused', ...options });
  } catch (error) {
    expect(isCallosumError(error, 'INVALID_ARGUMENT')).toBe(true);
    return (error as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(options)}`);
}

describe('coordinator options', () => {
  it('fills in every default from one table', () => {
    expect(resolveCoordinatorSettings({ outDir: 'unused' })).toMatchObject(COORDINATOR_DEFAULTS);
    expect(COORDINATOR_DEFAULTS.startTimeoutMs).toBe(600_000);
  });

  it('refuses more minWorkers than maxWorkers, naming the field', () => {
    expect(problemWith({ minWorkers: 3, maxWorkers: 2 })).toMatch(
      /minWorkers must be at most maxWorkers \(2\), got 3/,
    );
    expect(resolveCoordinatorSettings({ outDir: 'unused', minWorkers: 2, maxWorkers: 2 })).toMatchObject({
      minWorkers: 2,
      maxWorkers: 2,
    });
  });

  it.each([
    'startTimeoutMs',
    'noWorkerTimeoutMs',
    'heartbeatIntervalMs',
    'heartbeatTimeoutMs',
    'shardDeadlineMs',
    'handshakeTimeoutMs',
    'stragglerFloorMs',
  ])('refuses a negative %s, naming it', (field) => {
    expect(problemWith({ [field]: -1 })).toMatch(new RegExp(`\\b${field} must be a finite number`));
  });

  it('takes a wire dtype of the protocol, float32 unless told, and names another', () => {
    expect(resolveCoordinatorSettings({ outDir: 'unused' }).wireDtype).toBe('float32');
    expect(resolveCoordinatorSettings({ outDir: 'unused', wireDtype: 'bfloat16' }).wireDtype).toBe(
      'bfloat16',
    );
    expect(problemWith({ wireDtype: 'float8' })).toMatch(/\bwireDtype\b.*float32.*float16.*bfloat16/);
  });

  it('refuses an option it does not know, saying where a training setting goes', () => {
    expect(problemWith({ batchNorm: 'sync' })).toBe(
      'coordinator options: unknown option batchNorm (a training setting: put it in training)',
    );
    expect(problemWith({ minWorker: 2, batchSize: 64 })).toBe(
      'coordinator options: unknown option minWorker, batchSize (a training setting: put it in training)',
    );
  });

  it('takes TLS between peers for a ring run only', () => {
    expect(resolveCoordinatorSettings({ outDir: 'unused', topology: 'ring', peerTls: true }).peerTls).toBe(
      true,
    );
    expect(problemWith({ peerTls: true })).toMatch(/peerTls is for the ring topology.*topology is star/);
  });

  it("fills in a resumed run's stored settings where the options leave them out", () => {
    const stored = { topology: 'ring', wireDtype: 'float16', checkpointEverySteps: 7 } as const;
    const resumed = resolveCoordinatorSettings({ outDir: 'unused', peerTls: true }, stored);
    expect([resumed.topology, resumed.wireDtype, resumed.checkpointEverySteps, resumed.peerTls]).toEqual([
      'ring',
      'float16',
      7,
      true,
    ]);
    const given = resolveCoordinatorSettings({ outDir: 'unused', topology: 'star' }, stored);
    expect([given.topology, given.wireDtype]).toEqual(['star', 'float16']);
    expect(
      changedStoredSettings({ outDir: 'unused', topology: 'star', wireDtype: 'float16' }, stored),
    ).toEqual(['topology ring → star']);
  });

  it('names every bad field at once, nested ones with their path', () => {
    const message = problemWith({
      port: 70_000,
      maxBadResults: 0,
      connectionRate: { perSecond: 1, burst: 0.5 },
    });
    expect(message).toMatch(/\bport must be an integer in 0\.\.65535, got 70000/);
    expect(message).toMatch(/\bmaxBadResults must be an integer >= 1, got 0/);
    expect(message).toMatch(/\bconnectionRate\.burst must be an integer >= 1, got 0\.5/);
  });

  it('startCoordinator refuses contradictory options before it creates or listens on anything', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'callosum-options-'));
    try {
      const outDir = join(parent, 'run');
      await expect(startCoordinator({ outDir, minWorkers: 3, maxWorkers: 2, log: () => {} })).rejects.toThrow(
        /minWorkers must be at most maxWorkers/,
      );
      expect(await readdir(parent)).toEqual([]);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
