import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI_ENTRY, lastJsonLine, runCli, smallTestSetData, temporaryDirectory } from './processes.js';

const TOKEN = 'multi-host-test-token-0123456789';

describe('callosum coordinator + callosum worker as separate processes', () => {
  it('trains with a coordinator bound to 127.0.0.2 and workers that reach it by address with a token; all exit 0', async () => {
    const out = await temporaryDirectory('multi-host');
    const coordinator = spawn(
      process.execPath,
      [
        CLI_ENTRY,
        'coordinator',
        '--port',
        '0',
        '--min-workers',
        '2',
        '--steps',
        '20',
        ...smallTestSetData(),
        '--out',
        out,
        '--json',
      ],
      {
        env: { ...process.env, CALLOSUM_HOST: '127.0.0.2', CALLOSUM_TOKEN: TOKEN },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    coordinator.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    const url = await new Promise<string>((resolve, reject) => {
      coordinator.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        const match = /--connect (ws:\/\/\S+)/.exec(stderr);
        if (match?.[1]) resolve(match[1]);
      });
      coordinator.once('exit', () => reject(new Error(`coordinator exited early:\n${stderr}`)));
    });
    expect(url).toMatch(/^ws:\/\/127\.0\.0\.2:\d+$/);
    // Its dashboard, on the same port, is announced once at start (with a query that may carry the token).
    const dashboards = stderr.match(/^coordinator: dashboard at \S+$/gm) ?? [];
    expect(dashboards).toHaveLength(1);
    const dashboard = new URL(dashboards[0]?.slice('coordinator: dashboard at '.length) ?? '');
    expect(`${dashboard.origin}${dashboard.pathname}`).toBe(`http://127.0.0.2:${new URL(url).port}/`);

    const workers = [1, 2].map((i) =>
      runCli(['worker', '--name', `host-${i}`, '--backend', 'wasm'], {
        env: { CALLOSUM_CONNECT: url, CALLOSUM_TOKEN: TOKEN },
      }),
    );
    const coordinatorExit = await new Promise<number | null>((resolve) => coordinator.once('exit', resolve));
    const workerRuns = await Promise.all(workers);

    expect(coordinatorExit, stderr).toBe(0);
    expect(
      lastJsonLine<{ steps: number; workers: number }>({ code: 0, signal: null, stdout, stderr }),
    ).toMatchObject({
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
});
