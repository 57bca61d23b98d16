import { spawn } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel, readFlatWeights, trainLocal } from '@callosum/core';
import { describe, expect, it } from 'vitest';
import {
  CLI_ENTRY,
  lastJsonLine,
  runCli,
  SHORT_RUN,
  shortRun,
  smallTestSetData,
  stepsLogged,
  temporaryDirectory,
  trainingUntil,
} from './processes.js';

const SEED = 11;
const RUN = [...shortRun(), '--seed', String(SEED), '--checkpoint-every', '10'];

async function finalWeights(runDir: string): Promise<Float32Array> {
  const model = await loadModel(join(runDir, 'model'));
  const weights = readFlatWeights(model);
  model.dispose();
  return weights;
}

/** The final weights of RUN trained straight through by `callosum train`. */
async function uninterruptedWeights(): Promise<Float32Array> {
  const straight = await temporaryDirectory('straight');
  const run = await runCli(['train', ...RUN, '--out', straight, '--json']);
  expect(run.code, run.stderr).toBe(0);
  expect(lastJsonLine<{ steps: number }>(run).steps).toBe(SHORT_RUN.steps);
  return finalWeights(straight);
}

/**
 * Runs RUN (plus `extra`), kills its coordinator with SIGKILL after 25 steps and resumes it with
 * `resumeWorkers` workers; resolves with the final weights.
 */
async function killedAndResumedWeights(extra: string[], resumeWorkers: number): Promise<Float32Array> {
  const interrupted = await temporaryDirectory('interrupted');

  // Its own process group, so the orphaned local workers can be cleaned up after the kill.
  const victim = spawn(process.execPath, [CLI_ENTRY, 'train', ...RUN, ...extra, '--out', interrupted], {
    detached: true,
    stdio: 'ignore',
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    victim.once('exit', (_, signal) => resolve(signal)),
  );
  while ((await stepsLogged(interrupted)) < 25) await new Promise((resolve) => setTimeout(resolve, 50));
  victim.kill('SIGKILL'); // the coordinator only: it gets no chance to checkpoint or say goodbye
  expect(await exited).toBe('SIGKILL');
  try {
    process.kill(-(victim.pid as number), 'SIGKILL');
  } catch {
    // the workers may already have gone
  }
  const checkpoints = await readdir(join(interrupted, 'checkpoints'));
  expect(checkpoints.some((name) => name.startsWith('step-000000020'))).toBe(true);

  const resumed = await runCli([
    'train',
    '--workers',
    String(resumeWorkers),
    '--resume',
    interrupted,
    ...smallTestSetData(),
    '--json',
  ]);
  expect(resumed.code, resumed.stderr).toBe(0);
  expect(resumed.stderr).toMatch(/resuming from .*step-0000000[23]0\.ckpt after step [23]0 of 40/);
  expect(lastJsonLine<{ steps: number; workers: number }>(resumed)).toMatchObject({
    steps: 40,
    workers: resumeWorkers,
  });
  return finalWeights(interrupted);
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
}

describe('kill -9 the coordinator, then --resume', () => {
  it('completes the same number of steps with weights bit-identical to an uninterrupted run', async () => {
    const actual = await killedAndResumedWeights([], 2);
    expect(sameBits(actual, await uninterruptedWeights())).toBe(true);
  }, 240_000);

  // The checkpoint keeps the run's micro-batch size, so the resumed run adds along the same tree. With
  // micro-batches an uninterrupted run holds trainLocal's weights to the last bit (equivalence.test.ts),
  // so trainLocal in this process stands in for it.
  it('with micro-batches, stays bit-identical when resumed with a different worker count', async () => {
    const actual = await killedAndResumedWeights(['--micro-batch-size', '16'], 3);
    const local = await trainLocal({
      maxSteps: SHORT_RUN.steps,
      batchSize: SHORT_RUN.batchSize,
      seed: SEED,
      microBatchSize: 16,
      backend: 'wasm',
      evaluate: false,
    });
    local.model.dispose();
    expect(sameBits(actual, local.weights)).toBe(true);
  }, 240_000);

  it('on SIGTERM checkpoints the last finished step and exits within seconds (--json: a line saying so); --resume then completes', async () => {
    const runDir = await temporaryDirectory('sigterm');
    const run = spawn(
      process.execPath,
      [CLI_ENTRY, 'train', ...RUN, '--checkpoint-every', '1000', '--out', runDir, '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    let stdout = '';
    run.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    run.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    const exited = new Promise<number | null>((resolve) => run.once('exit', (code) => resolve(code)));
    while ((await stepsLogged(runDir)) < 15) await new Promise((resolve) => setTimeout(resolve, 50));
    const signalledAt = Date.now();
    run.kill('SIGTERM');
    const code = await exited;
    expect(Date.now() - signalledAt).toBeLessThan(10_000);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/COORDINATOR_STOPPING: interrupted by SIGTERM/);
    const [checkpoint] = await readdir(join(runDir, 'checkpoints'));
    const stoppedAt = Number(/step-(\d+)/.exec(checkpoint ?? '')?.[1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(15);
    // A program reading --json's last line learns why the run stopped and how to continue it.
    const failure = lastJsonLine<Record<string, unknown>>({ stdout, stderr, code, signal: null });
    expect(failure).toEqual({
      error: { code: 'COORDINATOR_STOPPING', message: expect.stringMatching(/interrupted by SIGTERM/) },
      runDir,
      resumeCommand: expect.stringMatching(new RegExp(`^callosum train .*--resume ${runDir}$`)),
      resumeFromStep: stoppedAt,
    });

    const resumed = await runCli([
      'train',
      '--workers',
      '2',
      '--resume',
      runDir,
      ...smallTestSetData(),
      '--json',
    ]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`after step ${stoppedAt} of 40`);
    expect(lastJsonLine<{ steps: number }>(resumed).steps).toBe(40);
  }, 120_000);
});

interface MetricsRecord {
  readonly type: string;
  readonly step?: number;
  readonly epoch?: number;
  readonly testLoss?: number;
}

/** The records of the run's metrics.jsonl, in order. */
async function metricsOf(runDir: string): Promise<MetricsRecord[]> {
  const text = await readFile(join(runDir, 'metrics.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as MetricsRecord);
}

/** Waits until the run in `runDir` has recorded its checkpoint of `step` (an epoch's last: its evaluation follows). */
async function checkpointRecorded(runDir: string, step: number): Promise<void> {
  const record = `"type":"checkpoint","step":${step},`;
  for (;;) {
    const text = await readFile(join(runDir, 'metrics.jsonl'), 'utf8').catch(() => '');
    if (text.includes(record)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('an evaluation the stop interrupted', () => {
  // The mlp, 30 steps an epoch. The workers stop themselves (SIGSTOP, fault injection) on receiving the
  // evaluation round given, so a stop after the checkpoint of the epoch's last step always lands in it.
  const EPOCH = 30;
  const frozenIn = (round: number) => ({ CALLOSUM_FAULT_STOP_IN_EVALUATION_AT: String(round) });
  const RUN = ['--workers', '2', '--model', 'mlp', '--epochs', '2', '--batch-size', '2000'];

  it('is done by the resumed run, once: after kill -9 in a mid-run epoch, after SIGTERM in the final one', async () => {
    const runDir = await temporaryDirectory('evaluation');
    const evaluations = async () =>
      (await metricsOf(runDir))
        .filter((record) => record.type === 'evaluation')
        .map(({ epoch, step }) => ({ epoch, step }));

    const killed = await trainingUntil(['train', ...RUN, '--out', runDir], runDir, 0, frozenIn(0));
    await checkpointRecorded(runDir, EPOCH);
    process.kill(-(killed.child.pid as number), 'SIGKILL'); // the coordinator and its workers
    await killed.exited;
    expect(await evaluations()).toEqual([]);

    // The resumed run evaluates epoch 1 first (its round 0), trains epoch 2, and is stopped in its
    // evaluation (round 1).
    const stopped = await trainingUntil(
      ['train', '--workers', '2', '--resume', runDir],
      runDir,
      0,
      frozenIn(1),
    );
    await checkpointRecorded(runDir, 2 * EPOCH);
    stopped.child.kill('SIGTERM');
    // Once the run is stopping, the frozen workers are killed: frozen, they would hold the stop past its
    // 8 s limit; let go, they could still finish the evaluation.
    while (!stopped.stderr().includes('SIGTERM: stopping'))
      await new Promise((resolve) => setTimeout(resolve, 10));
    const workers = await readFile(`/proc/${stopped.child.pid}/task/${stopped.child.pid}/children`, 'utf8');
    for (const pid of workers.trim().split(/\s+/).filter(Boolean).map(Number)) process.kill(pid, 'SIGKILL');
    expect(await stopped.exited).toBe(1);
    expect(stopped.stderr()).toContain(`the evaluation after epoch 1 (step ${EPOCH}) was not recorded`);
    expect(await evaluations()).toEqual([{ epoch: 0, step: EPOCH }]);

    const command = /continue with: callosum (train .*)$/m.exec(stopped.stderr())?.[1];
    const finished = await runCli([...(command ?? '').split(' '), '--json']);
    expect(finished.code, finished.stderr).toBe(0);
    const summary = lastJsonLine<{ steps: number; testLoss: number; samplesPerSecond: number | null }>(
      finished,
    );
    expect(summary.steps).toBe(2 * EPOCH);
    const final = { epoch: 1, step: 2 * EPOCH };
    expect(await evaluations()).toEqual([{ epoch: 0, step: EPOCH }, final]);
    const recorded = (await metricsOf(runDir)).filter((record) => record.type === 'evaluation').at(-1);
    expect(summary.testLoss).toBe(recorded?.testLoss);
    expect(Number.isFinite(summary.testLoss)).toBe(true);
    // It trained no step: its throughput is not measured (null in JSON), and the table says so.
    expect(summary.samplesPerSecond).toBeNull();

    // Killed after the evaluation was recorded but before the summary was: not evaluated again.
    await rm(join(runDir, 'summary.json'));
    const again = await runCli(['train', '--workers', '2', '--resume', runDir]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toContain('was not recorded');
    expect(again.stdout).toMatch(new RegExp(`test loss +${summary.testLoss.toFixed(4)}\n`));
    expect(again.stdout).toMatch(/throughput\s+none \(no step left to train after resuming\)/);
    expect(await evaluations()).toEqual([{ epoch: 0, step: EPOCH }, final]);
  }, 240_000);
});

describe('the settings a run stores', () => {
  it('(checkpoint interval, topology, wire dtype) are kept by a run resumed after kill -9 without their flags', async () => {
    const runDir = await temporaryDirectory('interval');
    const run = ['train', '--workers', '2', '--model', 'mlp', '--steps', '30', ...smallTestSetData()];
    const stored = ['--checkpoint-every', '5', '--topology', 'ring', '--wire-dtype', 'bfloat16'];
    const killed = await trainingUntil([...run, ...stored, '--out', runDir], runDir, 12);
    process.kill(-(killed.child.pid as number), 'SIGKILL');
    await killed.exited;

    const resumed = await runCli(['train', '--workers', '2', '--resume', runDir, ...smallTestSetData()]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const records = await metricsOf(runDir);
    const resumedAt = records.findIndex((record) => record.type === 'resumed');
    const from = records[resumedAt]?.step as number;
    const checkpointed = records
      .slice(resumedAt)
      .filter((record) => record.type === 'checkpoint')
      .map((record) => record.step);
    const every5 = Array.from({ length: (30 - from) / 5 }, (_, i) => from + 5 * (i + 1));
    expect(checkpointed).toEqual(every5);
    // Resumed as the ring run in bfloat16 it was (the CLI's defaults, star and float32, were not passed).
    expect(resumed.stderr).not.toMatch(/other settings than it stored/);
    const marker = JSON.parse(await readFile(join(runDir, 'callosum-run.json'), 'utf8'));
    expect(marker.settings).toEqual({
      checkpointEverySteps: 5,
      topology: 'ring',
      wireDtype: 'bfloat16',
      peerTls: false,
    });
  }, 120_000);
});
