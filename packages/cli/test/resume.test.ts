import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
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

  it('on SIGTERM checkpoints the last finished step and exits within seconds; --resume then completes', async () => {
    const runDir = await temporaryDirectory('sigterm');
    const run = spawn(
      process.execPath,
      [CLI_ENTRY, 'train', ...RUN, '--checkpoint-every', '1000', '--out', runDir],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    run.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
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
