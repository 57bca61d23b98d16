import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
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
 * For a file of tests with real worker processes: each call of the returned function gives a fresh
 * run directory; after each test its workers are killed and the directories it made removed.
 */
export function runDirectoryPerTest(prefix: string): () => Promise<string> {
  // A test may make several (one run per transport, say): all of them go after it.
  const made: string[] = [];
  afterEach(async () => {
    killWorkerProcesses();
    for (const directory of made.splice(0)) await rm(directory, { recursive: true, force: true });
  });
  return async () => {
    const directory = await mkdtemp(join(tmpdir(), prefix));
    made.push(directory);
    return directory;
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

/** The ring peer addresses the coordinator's /status lists, once at least `count` workers listen. */
export async function peerAddresses(
  coordinator: Coordinator,
  count: number,
  token?: string,
): Promise<string[]> {
  const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
  for (;;) {
    const response = await fetch(`${coordinator.url.replace('ws', 'http')}/status`, { headers });
    const { workers } = (await response.json()) as { workers: { peerAddress?: string }[] };
    const addresses = workers.flatMap((worker) =>
      worker.peerAddress === undefined ? [] : [worker.peerAddress],
    );
    if (addresses.length >= count) return addresses;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * `count` WebSocket upgrade requests without the token's proof to `address` (host:port), each connection
 * reset (RST) right after its request is sent: clients that vanish while they are being refused.
 */
export async function resetUpgrades(address: string, count: number): Promise<void> {
  const colon = address.lastIndexOf(':');
  const [host, port] = [
    address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'),
    Number(address.slice(colon + 1)),
  ];
  const request =
    'GET / HTTP/1.1\r\nHost: peer\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve) => {
      const socket = connect(port, host, () => {
        socket.write(request);
        socket.resetAndDestroy();
        resolve();
      });
      socket.once('error', () => resolve());
    });
  }
}
