/**
 * `callosum train` gives each local worker process its own GPU through CUDA_VISIBLE_DEVICES. No GPU is
 * needed, and none is used: a fake nvidia-smi (a shell script first on PATH) reports the GPUs, the
 * workers train on wasm as they do without tfjs-node-gpu, and a probe module that every node process of
 * the run preloads (NODE_OPTIONS=--import) records the CUDA_VISIBLE_DEVICES each process really got.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type EnvironmentChanges,
  type Finished,
  lastJsonLine,
  runCli,
  smallTestSetData,
  temporaryDirectory,
} from './processes.js';

const PROBE = fileURLToPath(new URL('./fixtures/environment-probe.mjs', import.meta.url));

let root: string;
beforeAll(async () => {
  root = await temporaryDirectory('local-worker-gpus');
});

/** PATH without any directory that holds an nvidia-smi (a real one, on a GPU machine). */
function pathWithoutNvidiaSmi(): string {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '' && !existsSync(join(dir, 'nvidia-smi')))
    .join(delimiter);
}

/**
 * A fake nvidia-smi running `body` (sh), in a directory of its own; returns a PATH with it first and the
 * file that counts its calls (one line each).
 */
async function fakeNvidiaSmi(name: string, body: string): Promise<{ path: string; calls: string }> {
  const dir = join(root, name, 'bin');
  await mkdir(dir, { recursive: true });
  const calls = join(dir, 'calls');
  await writeFile(join(dir, 'nvidia-smi'), `#!/bin/sh\necho "$@" >> "${calls}"\n${body}\n`);
  await chmod(join(dir, 'nvidia-smi'), 0o755);
  return { path: `${dir}${delimiter}${pathWithoutNvidiaSmi()}`, calls };
}

const TWO_GPUS = `printf '0\\n1\\n'`;

interface ProbedRun {
  readonly output: Finished;
  /** CUDA_VISIBLE_DEVICES (null: not set) of each worker process, by its --name. */
  readonly workers: Record<string, string | null>;
  /** CUDA_VISIBLE_DEVICES of the `callosum train` process itself. */
  readonly train: string | null;
}

/** Trains 2 steps on `workers` local workers with `flags` and `env`, and probes every process it started. */
async function probedTraining(
  name: string,
  workers: number,
  flags: string[],
  env: EnvironmentChanges,
): Promise<ProbedRun> {
  const probes = join(root, name, 'probes');
  await mkdir(probes, { recursive: true });
  const output = await runCli(
    [
      'train',
      ...['--workers', String(workers), '--threads', '1', '--steps', '2'],
      ...smallTestSetData(),
      ...['--out', join(root, name, 'run'), '--json'],
      ...flags,
    ],
    {
      env: {
        // The test's own environment must not decide: no CUDA_VISIBLE_DEVICES unless a test sets one.
        CUDA_VISIBLE_DEVICES: undefined,
        CALLOSUM_GPUS: undefined,
        ...env,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import="${PROBE}"`,
        ENVIRONMENT_PROBE_DIR: probes,
      },
      timeoutMs: 120_000,
    },
  );
  const records = await Promise.all(
    (await readdir(probes)).map(async (file) => {
      const record = JSON.parse(await readFile(join(probes, file), 'utf8'));
      return record as { argv: string[]; cudaVisibleDevices: string | null };
    }),
  );
  const byName: Record<string, string | null> = {};
  let train: string | null | undefined;
  for (const { argv, cudaVisibleDevices } of records) {
    if (argv[0] === 'train') train = cudaVisibleDevices;
    if (argv[0] === 'worker') byName[argv[argv.indexOf('--name') + 1] as string] = cudaVisibleDevices;
  }
  if (train === undefined) throw new Error(`the train process left no probe record:\n${output.stderr}`);
  return { output, workers: byName, train };
}

/** The run trained (on wasm: no tfjs-node-gpu here, so the variable only passes through). */
function expectTrainedOnWasm(run: ProbedRun): void {
  expect(run.output.code, run.output.stderr).toBe(0);
  expect(lastJsonLine<{ backend: string; steps: number }>(run.output)).toMatchObject({
    backend: 'wasm',
    steps: 2,
  });
}

/** The lines of the run's log about GPUs. */
function gpuLines(run: ProbedRun): string[] {
  return run.output.stderr.split('\n').filter((line) => line.startsWith('GPUs'));
}

describe('callosum train: one GPU per local worker, through CUDA_VISIBLE_DEVICES (GPUs faked)', () => {
  it('with a fake nvidia-smi reporting 2 GPUs, 3 workers get GPUs 0, 1, 0 (round-robin), said in one line', async () => {
    const nvidiaSmi = await fakeNvidiaSmi('detected', TWO_GPUS);
    const run = await probedTraining('detected', 3, [], { PATH: nvidiaSmi.path });
    expectTrainedOnWasm(run);
    expect(run.workers).toEqual({ 'worker-1': '0', 'worker-2': '1', 'worker-3': '0' });
    expect(run.train).toBeNull();
    expect(gpuLines(run)).toEqual([
      'GPUs (from nvidia-smi): CUDA_VISIBLE_DEVICES worker-1=0 worker-2=1 worker-3=0; 3 workers on 2 GPUs, shared round-robin',
    ]);
    expect((await readFile(nvidiaSmi.calls, 'utf8')).trim().split('\n')).toHaveLength(1);
  });

  it('with a fake nvidia-smi reporting 2 GPUs, --gpus 5,7 overrides it and a CUDA_VISIBLE_DEVICES the user set', async () => {
    const nvidiaSmi = await fakeNvidiaSmi('explicit', TWO_GPUS);
    const run = await probedTraining('explicit', 2, ['--gpus', '5,7'], {
      PATH: nvidiaSmi.path,
      CUDA_VISIBLE_DEVICES: '3',
    });
    expectTrainedOnWasm(run);
    expect(run.workers).toEqual({ 'worker-1': '5', 'worker-2': '7' });
    expect(gpuLines(run)).toEqual(['GPUs (as given): CUDA_VISIBLE_DEVICES worker-1=5 worker-2=7']);
    expect(existsSync(nvidiaSmi.calls)).toBe(false);
  });

  it('with a fake nvidia-smi reporting 2 GPUs, a CUDA_VISIBLE_DEVICES the user set reaches every worker unchanged', async () => {
    const nvidiaSmi = await fakeNvidiaSmi('users-own', TWO_GPUS);
    const run = await probedTraining('users-own', 2, [], { PATH: nvidiaSmi.path, CUDA_VISIBLE_DEVICES: '1' });
    expectTrainedOnWasm(run);
    expect(run.workers).toEqual({ 'worker-1': '1', 'worker-2': '1' });
    expect(gpuLines(run)).toEqual([
      'GPUs: every worker keeps CUDA_VISIBLE_DEVICES=1 as set; --gpus gives each worker its own',
    ]);
    expect(existsSync(nvidiaSmi.calls)).toBe(false);
  });

  it('with no nvidia-smi on PATH (no GPU), no worker gets a CUDA_VISIBLE_DEVICES and nothing is said', async () => {
    const run = await probedTraining('absent', 2, [], { PATH: pathWithoutNvidiaSmi() });
    expectTrainedOnWasm(run);
    expect(run.workers).toEqual({ 'worker-1': null, 'worker-2': null });
    expect(gpuLines(run)).toEqual([]);
  });

  it('with a fake nvidia-smi that exits 1, no worker gets a CUDA_VISIBLE_DEVICES, and the log says why', async () => {
    const nvidiaSmi = await fakeNvidiaSmi('failing', "echo 'NVIDIA-SMI has failed' >&2\nexit 1");
    const run = await probedTraining('failing', 2, [], { PATH: nvidiaSmi.path });
    expectTrainedOnWasm(run);
    expect(run.workers).toEqual({ 'worker-1': null, 'worker-2': null });
    expect(gpuLines(run)).toEqual(['GPUs: none assigned: nvidia-smi exited with 1; --gpus assigns them']);
  });

  it('a bad --gpus or CALLOSUM_GPUS fails at once, naming the entry, and starts nothing', async () => {
    const out = join(root, 'bad', 'run');
    const bad = await runCli(['train', '--gpus', '0,one', '--steps', '1', '--out', out]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--gpus.*"one" is not a GPU index \(0, 1, …\) or UUID \(GPU-…\)/);
    const twice = await runCli(['train', '--steps', '1', '--out', out], {
      env: { CALLOSUM_GPUS: '1,1' },
    });
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/CALLOSUM_GPUS.*GPU 1 is listed twice/);
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
  });
});
