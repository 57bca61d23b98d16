import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  CLI_ENTRY,
  lastJsonLine,
  runCli,
  smallTestSetData,
  startCoordinatorProcess,
  stepsLogged,
  temporaryDirectory,
} from './processes.js';

const TOKEN = 'multi-host-test-token-0123456789';

describe('callosum coordinator + callosum worker as separate processes', () => {
  it('trains with a coordinator bound to 127.0.0.2 and workers that reach it by address with a token; all exit 0', async () => {
    const out = await temporaryDirectory('multi-host');
    const coordinator = await startCoordinatorProcess(
      ['--port', '0', '--min-workers', '2', '--steps', '20', ...smallTestSetData(), '--out', out, '--json'],
      { CALLOSUM_HOST: '127.0.0.2', CALLOSUM_TOKEN: TOKEN },
    );
    const { url } = coordinator;
    expect(url).toMatch(/^ws:\/\/127\.0\.0\.2:\d+$/);
    // Its dashboard, on the same port, is announced once at start, without the token (the user's own
    // secret would be copied into logs), saying how to open it.
    const dashboards = coordinator.stderr().match(/^coordinator: dashboard at .*$/gm) ?? [];
    expect(dashboards).toHaveLength(1);
    expect(dashboards[0]).not.toContain(TOKEN);
    expect(dashboards[0]).toMatch(/ \(open it with \?token=<the run's token>\)$/);
    const dashboard = new URL(dashboards[0]?.split(' ')[3] ?? '');
    expect(dashboard.href).toBe(`http://127.0.0.2:${new URL(url).port}/`);

    const workers = [1, 2].map((i) =>
      runCli(['worker', '--name', `host-${i}`, '--backend', 'wasm'], {
        env: { CALLOSUM_CONNECT: url, CALLOSUM_TOKEN: TOKEN },
      }),
    );
    const finished = await coordinator.finished;
    const workerRuns = await Promise.all(workers);
    const { stderr } = finished;

    expect(finished.code, stderr).toBe(0);
    expect(lastJsonLine<{ steps: number; workers: number }>(finished)).toMatchObject({
      steps: 20,
      workers: 2,
    });
    for (const run of workerRuns) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(/training complete/);
    }
    expect(stderr).toMatch(/host-1/);
    expect(stderr).toMatch(/host-2/);
  }, 120_000);

  it('trains in the ring with workers that listen for their peers on 127.0.0.3 and 127.0.0.4', async () => {
    const out = await temporaryDirectory('multi-host-ring');
    const coordinator = await startCoordinatorProcess(
      ['--port', '0', '--min-workers', '2', '--steps', '20', ...smallTestSetData(), '--out', out, '--json'],
      { CALLOSUM_HOST: '127.0.0.2', CALLOSUM_TOKEN: TOKEN, CALLOSUM_TOPOLOGY: 'ring' },
    );
    const workers = [3, 4].map((host) =>
      runCli(
        ['worker', '--name', `peer-${host}`, '--backend', 'wasm', '--advertise-host', `127.0.0.${host}`],
        {
          env: { CALLOSUM_CONNECT: coordinator.url, CALLOSUM_TOKEN: TOKEN },
        },
      ),
    );
    const finished = await coordinator.finished;
    const workerRuns = await Promise.all(workers);
    expect(finished.code, finished.stderr).toBe(0);
    expect(lastJsonLine<{ steps: number; workers: number }>(finished)).toMatchObject({
      steps: 20,
      workers: 2,
    });
    for (const [index, run] of workerRuns.entries()) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(new RegExp(`listening for ring peers at 127\\.0\\.0\\.${index + 3}:\\d+`));
      expect(run.stderr).toMatch(/training complete/);
    }
  }, 120_000);

  it('--rejoin-timeout: with its only worker SIGKILLed, the coordinator waits that long, checkpoints and stops (NO_WORKERS, with --json a line saying how to resume)', async () => {
    const out = await temporaryDirectory('rejoin-timeout');
    const coordinator = await startCoordinatorProcess([
      ...['--port', '0', '--steps', '100000', '--rejoin-timeout', '8000', '--checkpoint-every', '100000'],
      ...[...smallTestSetData(), '--out', out, '--json'],
    ]);
    const worker = spawn(
      process.execPath,
      [CLI_ENTRY, 'worker', '--connect', coordinator.url, '--backend', 'wasm'],
      {
        stdio: 'ignore',
      },
    );
    while ((await stepsLogged(out)) < 3) await new Promise((resolve) => setTimeout(resolve, 50));
    worker.kill('SIGKILL');
    const killedAt = Date.now();
    // /status says the step is waiting for a worker, and for how long it will.
    const statusUrl = `${coordinator.url.replace('ws', 'http')}/status`;
    let waiting: { waitedMs: number; timeoutMs: number } | null = null;
    // Asked until 7.5 s after the kill: a loaded machine may be slow to notice, but not past the wait.
    while (waiting === null && Date.now() - killedAt < 7_500) {
      waiting = ((await (await fetch(statusUrl)).json()) as { waitingForWorker: typeof waiting })
        .waitingForWorker;
      if (waiting === null) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(waiting).toEqual({ waitedMs: expect.any(Number), timeoutMs: 8000 });
    const finished = await coordinator.finished;
    const waited = Date.now() - killedAt;
    expect(finished.code).toBe(1);
    expect(finished.stderr).toMatch(/no healthy worker; waiting up to 8000 ms for one to join/);
    expect(finished.stderr).toMatch(/NO_WORKERS: .*no healthy worker for 8000 ms/);
    // Longer than the wait, shorter than the default minute.
    expect(waited).toBeGreaterThan(8000);
    expect(waited).toBeLessThan(30_000);
    const failure = lastJsonLine<{
      error: { code: string };
      resumeCommand?: string;
      resumeFromStep?: number;
    }>(finished);
    expect(failure.error.code).toBe('NO_WORKERS');
    expect(failure.resumeFromStep).toBeGreaterThanOrEqual(3);
    expect(failure.resumeCommand).toMatch(/^callosum coordinator .*--rejoin-timeout 8000 .*--resume /);
  }, 120_000);
});
