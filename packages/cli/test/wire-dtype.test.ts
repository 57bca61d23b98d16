import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunSummary } from '@callosum/coordinator';
import { describe, expect, it } from 'vitest';
import { lastJsonLine, runCli, SHORT_RUN, shortRun, temporaryDirectory } from './processes.js';
import { finishedShortRun } from './shared-run.js';

// The reference cnn: every step moves its weights to each worker and a gradient back from each.
const CNN_PARAMETERS = 693_962;
/** A step's samples, which travel as stored whatever the wire dtype: uint8 images and labels, int32 keys. */
const SHARD_BYTES = SHORT_RUN.batchSize * (28 * 28 + 1 + 4);

async function bytesPerStep(run: { stdout: string; stderr: string; code: number | null }) {
  expect(run.code, run.stderr).toBe(0);
  return lastJsonLine<RunSummary>({ ...run, signal: null }).bytesPerStep;
}

describe('callosum train --wire-dtype: bytes per step', () => {
  it('float32 moves 2 × workers × parameters × 4 bytes a step plus the shards, float16 about half', async () => {
    const { runDir, output } = await finishedShortRun();
    const float32 = await bytesPerStep(output);
    const modelBytes = 2 * SHORT_RUN.workers * CNN_PARAMETERS * 4;
    expect(float32.coordinator).toBeGreaterThanOrEqual(modelBytes + SHARD_BYTES);
    expect(float32.coordinator).toBeLessThanOrEqual(1.2 * modelBytes + SHARD_BYTES);
    // Two workers with even shards: each moves about half.
    expect(float32.busiestWorker).toBeGreaterThanOrEqual(modelBytes / 2);
    expect(float32.busiestWorker).toBeLessThan(0.51 * float32.coordinator);
    const steps = (await readFile(join(runDir, 'metrics.jsonl'), 'utf8'))
      .split('\n')
      .filter((line) => line.includes('"type":"step"'))
      .map((line) => JSON.parse(line) as { bytes: { coordinator: number } });
    expect(steps).toHaveLength(SHORT_RUN.steps);
    for (const step of steps) expect(step.bytes.coordinator).toBeGreaterThanOrEqual(modelBytes);

    const out = await temporaryDirectory('wire-float16');
    const float16 = await bytesPerStep(
      await runCli(['train', ...shortRun(), '--wire-dtype', 'float16', '--out', out, '--json'], {
        timeoutMs: 300_000,
      }),
    );
    // The model's bytes halve; the shards' do not.
    expect((float16.coordinator - SHARD_BYTES) / (float32.coordinator - SHARD_BYTES)).toBeCloseTo(0.5, 2);
    expect(float16.busiestWorker / float32.busiestWorker).toBeCloseTo(0.5, 1);
  }, 600_000);
});

describe('callosum train --wire-dtype: a gradient beyond float16', () => {
  const task = fileURLToPath(new URL('./fixtures/tasks/large-targets.mjs', import.meta.url));
  const args = ['train', '--task', task, '--workers', '1', '--threads', '1', '--steps', '3'];

  it('is never applied: the run stops naming the overflow and bfloat16; bfloat16 trains it', async () => {
    const float16 = await runCli([
      ...args,
      '--wire-dtype',
      'float16',
      '--out',
      await temporaryDirectory('f16'),
    ]);
    expect(float16.code).toBe(1);
    expect(float16.stderr).toMatch(
      /TRAINING_DIVERGED.*non-finite gradient\/loss on every worker: step 1: gradient\[\d+\] = -?\d.* overflows float16, the run's wire dtype \(largest finite value 65504\): use wire dtype bfloat16/,
    );
    const bfloat16 = await runCli([
      ...args,
      '--wire-dtype',
      'bfloat16',
      '--out',
      await temporaryDirectory('bf16'),
      '--json',
    ]);
    expect(bfloat16.code, bfloat16.stderr).toBe(0);
    expect(lastJsonLine<RunSummary>(bfloat16)).toMatchObject({ steps: 3 });
  }, 120_000);

  it('is refused as a flag value it does not know, naming the choices', async () => {
    const refused = await runCli([...args, '--wire-dtype', 'float8']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/--wire-dtype.*float8.*float32, float16, bfloat16/);
  });
});
