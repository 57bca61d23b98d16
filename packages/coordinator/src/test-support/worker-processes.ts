import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

// Real worker processes (the @callosum/worker package, as `callosum worker` runs it) on loopback.
const packageDir = fileURLToPath(new URL('../..', import.meta.url));
const running = new Set<ChildProcess>();

/** Starts a worker process for `url`; resolves with its exit code. */
export function startWorkerProcess(url: string, name: string, token?: string): Promise<number | null> {
  const options = { url, backend: 'cpu', name, ...(token === undefined ? {} : { token }) };
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
