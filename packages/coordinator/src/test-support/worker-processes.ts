import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkerOptions } from '@callosum/worker';
import { afterEach } from 'vitest';
import WebSocket from 'ws';
import type { Coordinator } from '../coordinator.js';
import type { RunSummary } from '../options.js';

// Real worker processes (the @callosum/worker package, as `callosum worker` runs it) on loopback.
const packageDir = fileURLToPath(new URL('../..', import.meta.url));
const running = new Set<ChildProcess>();

/** Starts a worker process for `url`, with `extra` options (JSON texts only); resolves with its exit code. */
export function startWorkerProcess(
  url: string,
  name: string,
  extra: Partial<Pick<WorkerOptions, 'token' | 'peerTls'>> = {},
): Promise<number | null> {
  // One compute thread: these tests are about the coordinator, and each thread of a cpu worker would load
  // tfjs again (threads have their own tests in @callosum/worker).
  const options = { url, backend: 'cpu', threads: 1, name, ...extra };
  const script =
    "import('@callosum/worker')" +
    `.then(({ runWorker }) => runWorker({ ...${JSON.stringify(options)}, log: () => {} }))` +
    '.then((exit) => process.exit(exit.exitCode))';
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: packageDir,
    stdio: 'ignore',
  });
  running.add(child);
  return once(child, 'exit').then(([code]) => {
    running.delete(child);
    return code as number | null;
  });
}

function killWorkerProcesses(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/**
 * For a file of tests with real worker processes: each test gets a fresh run directory from the
 * returned function; afterwards its workers are killed and the directory removed.
 */
export function runDirectoryPerTest(prefix: string): () => Promise<string> {
  let current: string | undefined;
  afterEach(async () => {
    killWorkerProcesses();
    if (current !== undefined) await rm(current, { recursive: true, force: true });
    current = undefined;
  });
  return async () => {
    current = await mkdtemp(join(tmpdir(), prefix));
    return current;
  };
}

/** An upgrade without the token's proof, as a stranger would try: resolves once it was refused. */
export async function refusedUpgrade(url: string): Promise<void> {
  const refused = new WebSocket(url);
  refused.once('error', () => {});
  await new Promise((resolve) => refused.once('unexpected-response', resolve));
  refused.terminate();
}

/** Runs the coordinator's run to its end with a worker process per name; its summary and their exit codes. */
export async function runWithWorkerProcesses(
  coordinator: Coordinator,
  token: string,
  names: readonly string[],
): Promise<{ summary: RunSummary; exitCodes: (number | null)[] }> {
  const exits = names.map((name) => startWorkerProcess(coordinator.url, name, { token }));
  const summary = await coordinator.result;
  return { summary, exitCodes: await Promise.all(exits) };
}
