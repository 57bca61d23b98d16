import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The CLI's own entry point: local workers are `callosum worker` processes. */
const CLI_ENTRY = fileURLToPath(new URL('./bin.js', import.meta.url));

export interface LocalWorker {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** The worker's recent log lines, for reporting a failure. */
  readonly recentLog: string[];
}

const KEPT_LOG_LINES = 20;

/** How a local worker computes: its backend and compute threads, and the task module it loads. */
export interface LocalWorkerCompute {
  readonly backend: string;
  readonly threads: number;
  readonly taskModule?: string | undefined;
}

/** Starts one worker process that connects to `url`. */
export function spawnLocalWorker(
  name: string,
  url: string,
  { backend, threads, taskModule }: LocalWorkerCompute,
  extraEnv: Record<string, string> = {},
): LocalWorker {
  // A local worker outlives its coordinator only when that was killed: give up soon, not after a minute.
  const args = [
    'worker',
    '--connect',
    url,
    '--backend',
    backend,
    '--threads',
    String(threads),
    '--name',
    name,
    '--give-up-after',
    '10000',
    ...(taskModule === undefined ? [] : ['--task', taskModule]),
  ];
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    // The run's own token comes in extraEnv; a token file set for this shell would contradict it.
    env: { ...withoutKey(process.env, 'CALLOSUM_TOKEN_FILE'), ...extraEnv },
  });
  const recentLog: string[] = [];
  let partial = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    recentLog.push(...lines);
    recentLog.splice(0, Math.max(0, recentLog.length - KEPT_LOG_LINES));
  });
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  return { name, process: child, exited, recentLog };
}

/** Waits up to `graceMs` for the workers to exit by themselves, then kills what is left. */
export async function reapWorkers(workers: readonly LocalWorker[], graceMs: number): Promise<void> {
  const timer = setTimeout(() => {
    for (const worker of workers) if (worker.process.exitCode === null) worker.process.kill('SIGKILL');
  }, graceMs);
  await Promise.all(workers.map((worker) => worker.exited));
  clearTimeout(timer);
}

function withoutKey(env: NodeJS.ProcessEnv, key: string): NodeJS.ProcessEnv {
  const { [key]: _, ...rest } = env;
  return rest;
}
