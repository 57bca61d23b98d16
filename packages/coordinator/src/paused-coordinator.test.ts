import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startWorkerProcess } from './test-support/worker-processes.js';

// A coordinator process stopped with SIGSTOP, longer than its heartbeat timeout and its shard deadline,
// while two real worker processes train with it over loopback. When it continues, its timers fire before
// it has read what the workers sent meanwhile: it must read that first, and blame none of them.
const packageDir = fileURLToPath(new URL('..', import.meta.url));
const TOKEN = 'paused-coordinator-test-token-0123456789';
const STEPS = 600;
// Timeouts short enough for a test, long enough that a busy machine (the other packages' tests run
// beside this one) does not trip them on its own; the pause is longer than both.
const settings = { heartbeatIntervalMs: 250, heartbeatTimeoutMs: 3_000, shardDeadlineMs: 4_000 };
const PAUSE_MS = 5_000;

let coordinator: ChildProcess | undefined;
let outDir: string | undefined;
afterEach(async () => {
  coordinator?.kill('SIGKILL');
  if (outDir !== undefined) await rm(outDir, { recursive: true, force: true });
});

/** The coordinator in a process of its own (the built package), printing its URL, each step and its summary. */
function startCoordinatorProcess(dir: string): ChildProcess {
  const options = {
    outDir: dir,
    token: TOKEN,
    training: {
      model: { name: 'mlp', options: { hidden: [16] } },
      batchSize: 32,
      maxSteps: STEPS,
      maxShift: 0,
    },
    minWorkers: 2,
    ...settings,
  };
  const script =
    "const { startCoordinator } = await import('@callosum/coordinator');" +
    'const print = (line) => process.stdout.write(JSON.stringify(line) + "\\n");' +
    `const coordinator = await startCoordinator({ ...${JSON.stringify(options)}, log: (line) => process.stderr.write(line + "\\n"), ` +
    'onStep: (report) => print({ step: report.step }) });' +
    'print({ url: coordinator.url });' +
    'const { evictions, redoneShards, steps } = await coordinator.result;' +
    'print({ evictions, redoneShards, steps });';
  return spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: packageDir,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

describe('a coordinator stopped for longer than its timeouts', () => {
  it('reads what its workers sent while it was stopped before judging them: no evictions, no redone shards (real SIGSTOP)', async () => {
    outDir = await mkdtemp(join(tmpdir(), 'callosum-paused-'));
    const child = startCoordinatorProcess(outDir);
    coordinator = child;
    const lines = createInterface({ input: child.stdout as NonNullable<typeof child.stdout> });
    let stoppedAt: number | undefined;
    let summary: { evictions: number; redoneShards: number; steps: number } | undefined;
    let lastStep = 0;
    for await (const line of lines) {
      const message = JSON.parse(line);
      if (message.url !== undefined) {
        for (const name of ['a', 'b']) void startWorkerProcess(message.url, name, { token: TOKEN });
      } else if (message.step !== undefined) {
        lastStep = message.step;
        if (stoppedAt === undefined && lastStep >= 20) {
          stoppedAt = lastStep;
          child.kill('SIGSTOP');
          await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
          child.kill('SIGCONT');
        }
      } else {
        summary = message;
      }
    }
    await once(child, 'exit');
    // Stopped mid-run, well before its end, and trained on afterwards.
    expect(stoppedAt).toBeLessThan(STEPS / 2);
    expect(lastStep).toBe(STEPS);
    expect(summary).toEqual({ evictions: 0, redoneShards: 0, steps: STEPS });
  }, 120_000);
});
