import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParameterLayout } from '@callosum/core';
import { afterAll, inject } from 'vitest';

export const CLI_ENTRY = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Variables added to the test's environment; one set to undefined is left out (spawn skips it). */
export type EnvironmentChanges = Record<string, string | undefined>;

/** Runs `callosum <args>` as a real process and collects its output; kills it after `timeoutMs`. */
export function runCli(
  args: string[],
  options: { timeoutMs?: number; env?: EnvironmentChanges } = {},
): Promise<Finished> {
  return runNodeScript(CLI_ENTRY, args, options);
}

/** Runs `node <script> <args>` as a real process and collects its output; kills it after `timeoutMs`. */
export function runNodeScript(
  script: string,
  args: string[],
  options: { timeoutMs?: number; env?: EnvironmentChanges } = {},
): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A `callosum coordinator` process, with the URL it told workers to connect to. */
export interface CoordinatorProcess {
  readonly url: string;
  /** Resolves with the finished process's exit code and output. */
  readonly finished: Promise<Finished>;
  /** Its stderr so far. */
  stderr(): string;
}

/** Starts `callosum coordinator <args>` and waits until it announces where workers connect. */
export async function startCoordinatorProcess(
  args: string[],
  env: Record<string, string> = {},
): Promise<CoordinatorProcess> {
  const child = spawn(process.execPath, [CLI_ENTRY, 'coordinator', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  const finished = new Promise<Finished>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const match = /--connect (ws:\/\/\S+)/.exec(stderr);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', () => reject(new Error(`coordinator exited early:\n${stderr}`)));
  });
  return { url, finished, stderr: () => stderr };
}

/** How many step lines the run in `runDir` has written to metrics.jsonl so far. */
export async function stepsLogged(runDir: string): Promise<number> {
  const text = await readFile(join(runDir, 'metrics.jsonl'), 'utf8').catch(() => '');
  return text.split('\n').filter((line) => line.includes('"type":"step"')).length;
}

/**
 * Starts `callosum <args>` (a run into `runDir`) in its own process group, as a terminal does, and
 * waits until it has trained `steps` steps.
 */
export async function trainingUntil(
  args: string[],
  runDir: string,
  steps: number,
  env: Record<string, string> = {},
  cwd?: string,
) {
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], {
    detached: true,
    ...(cwd === undefined ? {} : { cwd }),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  while ((await stepsLogged(runDir)) < steps) await new Promise((resolve) => setTimeout(resolve, 50));
  return { child, exited, stderr: () => stderr };
}

/** The JSON object on the last stdout line (the `--json` summary). */
export function lastJsonLine<T>(output: Finished): T {
  const lines = output.stdout.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`no JSON summary on stdout.\nstdout:\n${output.stdout}\nstderr:\n${output.stderr}`);
  }
}

/** `--data` for runs that test behaviour, not accuracy: the real MNIST with a small test set (small-test-set.ts). */
export function smallTestSetData(): string[] {
  return ['--data', inject('smallTestSetDir')];
}

/** The short run the stop and resume tests interrupt. */
export const SHORT_RUN = { workers: 2, steps: 40, batchSize: 64 } as const;

/** The flags of SHORT_RUN. */
export function shortRun(): string[] {
  return [
    '--workers',
    String(SHORT_RUN.workers),
    '--steps',
    String(SHORT_RUN.steps),
    '--batch-size',
    String(SHORT_RUN.batchSize),
    ...smallTestSetData(),
  ];
}

/** `callosum train` for two steps on two workers into `out`: the smallest real run. */
export function twoStepTraining(out: string): string[] {
  return ['train', '--workers', '2', '--steps', '2', ...smallTestSetData(), '--out', out];
}

/**
 * The test file's temporary directories. Registered when the file imports this module (each test file
 * has its own copy of it), so every file that makes one has them removed after its tests.
 */
const temporaryDirectories: string[] = [];
afterAll(async () => {
  await Promise.all(temporaryDirectories.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A new directory under the system's temporary directory, removed after the test file's tests. */
export async function temporaryDirectory(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `callosum-${prefix}-`));
  temporaryDirectories.push(dir);
  return dir;
}

/**
 * Relative difference of two weight vectors, tensor by tensor: max |a − b| over a tensor divided by
 * max |b| over it, the largest over all tensors. Per-tensor scale, because an element that happens to
 * sit near zero has no meaningful relative error of its own.
 */
export function maxRelativeDifference(a: Float32Array, b: Float32Array, layout: ParameterLayout): number {
  if (a.length !== b.length || a.length !== layout.totalSize) {
    throw new Error(`lengths differ: ${a.length}, ${b.length}, layout ${layout.totalSize}`);
  }
  let worst = 0;
  for (const { offset, size } of layout.entries) {
    let difference = 0;
    let scale = 0;
    for (let i = offset; i < offset + size; i++) {
      difference = Math.max(difference, Math.abs((a[i] as number) - (b[i] as number)));
      scale = Math.max(scale, Math.abs(b[i] as number));
    }
    worst = Math.max(worst, scale === 0 ? difference : difference / scale);
  }
  return worst;
}

/**
 * What a test holds a run at (awaited from `onStep`) until something it waits for has happened, so
 * that the run cannot end first however fast its steps are; `open` it once that has happened. `wait`
 * gives up after `limitMs`: if the event never comes (or the test fails before opening it), the run goes
 * on, and the test fails on its assertions rather than at its timeout with the run still held.
 */
export function runGate(limitMs = 30_000): { wait(): Promise<void>; open(): void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const limit = () => new Promise<void>((resolve) => setTimeout(resolve, limitMs).unref());
  return { wait: () => Promise.race([opened, limit()]), open: () => open() };
}
