import { describe, expect, it } from 'vitest';
import {
  lastJsonLine,
  runCli,
  smallTestSetData,
  startCoordinatorProcess,
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
});
