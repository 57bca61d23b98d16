import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import {
  CLI_ENTRY,
  lastJsonLine,
  runCli,
  shortRun,
  smallTestSetData,
  temporaryDirectory,
  trainingUntil,
} from './processes.js';

const NEVER_LOADS_TASK = fileURLToPath(new URL('./fixtures/tasks/never-loads.mjs', import.meta.url));

const RUN = ['train', ...shortRun(), '--checkpoint-every', '1000'];

describe('stop signals', () => {
  it('a second SIGINT while stopping is acknowledged and does not cut the checkpoint short; the resume command is printed', async () => {
    const runDir = await temporaryDirectory('double-sigint');
    const run = await trainingUntil([...RUN, '--out', runDir], runDir, 8);
    // Ctrl-C pressed twice: the second once the first is acknowledged, so the kernel cannot merge the
    // two into one pending signal on a busy machine.
    const stopping = new Promise<void>((resolve) =>
      run.child.stderr.on('data', () => {
        if (run.stderr().includes('SIGINT: stopping')) resolve();
      }),
    );
    run.child.kill('SIGINT');
    await stopping;
    run.child.kill('SIGINT');
    const code = await run.exited;
    expect(code).toBe(1);
    expect(run.stderr()).toContain('saving checkpoint, please wait');
    const checkpoints = await readdir(join(runDir, 'checkpoints'));
    expect(checkpoints.filter((name) => name.endsWith('.tmp'))).toEqual([]);
    expect(checkpoints.some((name) => /^step-\d{9}\.ckpt$/.test(name))).toBe(true);
    const command = /continue with: (callosum train .*)$/m.exec(run.stderr())?.[1];
    // --data is not stored by the run, so the command must carry it.
    expect(command).toBe(
      `callosum train --workers 2 --data ${inject('smallTestSetDir')} --checkpoint-every 1000 --resume ${runDir}`,
    );
    const resumed = await runCli([...(command as string).split(' ').slice(1), '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(lastJsonLine<{ steps: number }>(resumed).steps).toBe(40);
  }, 180_000);

  it('when every worker process is SIGKILLed after a checkpoint, the run stops and prints the resume command', async () => {
    const runDir = await temporaryDirectory('workers-killed');
    const run = await trainingUntil(
      ['train', ...shortRun(), '--checkpoint-every', '5', '--out', runDir],
      runDir,
      7,
    );
    // The workers are the CLI's child processes (/proc lists a task's children).
    const children = await readFile(`/proc/${run.child.pid}/task/${run.child.pid}/children`, 'utf8');
    const workers = children.trim().split(/\s+/).map(Number);
    expect(workers).toHaveLength(2);
    for (const pid of workers) process.kill(pid, 'SIGKILL');
    expect(await run.exited).toBe(1);
    // Not the last line a worker logged (it said nothing about being killed).
    expect(run.stderr()).toMatch(
      /every local worker process has exited \(the last: worker-\d was killed by SIGKILL\)/,
    );
    expect(run.stderr()).toMatch(new RegExp(`continue with: callosum train .*--resume ${runDir}`));
  }, 120_000);

  it('when a local worker dies before joining, the run stops at once rather than waiting for it', async () => {
    const runDir = await temporaryDirectory('worker-killed-early');
    const started = Date.now();
    const run = await trainingUntil(['train', ...shortRun(), '--out', runDir], runDir, 0);
    let workers: number[] = [];
    while (workers.length < 2) {
      const children = await readFile(`/proc/${run.child.pid}/task/${run.child.pid}/children`, 'utf8');
      workers = children.trim().split(/\s+/).filter(Boolean).map(Number);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    process.kill(workers[0] as number, 'SIGKILL');
    expect(await run.exited).toBe(1);
    expect(run.stderr()).toMatch(
      /worker-1 exited before the first step(?: \(.*\))?; the run needs all 2 local workers to start/,
    );
    // Without this, the coordinator waited out its start timeout (10 minutes) for a worker that was gone.
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 120_000);

  // A ring run's weights are in its workers' replicas: with every worker gone, the step it stopped at
  // cannot be checkpointed, and a resume continues from the newest checkpoint.
  it('a ring run whose workers are all SIGKILLed says from which step a resume continues', async () => {
    const runDir = await temporaryDirectory('ring-workers-killed');
    const run = await trainingUntil(
      ['train', ...shortRun(), '--topology', 'ring', '--checkpoint-every', '10', '--out', runDir],
      runDir,
      12,
    );
    const children = await readFile(`/proc/${run.child.pid}/task/${run.child.pid}/children`, 'utf8');
    for (const pid of children.trim().split(/\s+/).map(Number)) process.kill(pid, 'SIGKILL');
    expect(await run.exited).toBe(1);
    const stoppedAt = Number(/could not checkpoint step (\d+)/.exec(run.stderr())?.[1]);
    // The newest checkpoint: step 10, or a later multiple of 10 if training got further before the kill.
    const newest = Number(
      /a resume continues from step (\d+), the newest checkpoint/.exec(run.stderr())?.[1],
    );
    expect(newest % 10).toBe(0);
    expect(newest).toBeGreaterThanOrEqual(10);
    expect(stoppedAt).toBeGreaterThan(newest);
    // At most one checkpoint interval on: a kill during step 20's checkpoint stops at 20 with 10 the newest.
    expect(stoppedAt).toBeLessThanOrEqual(newest + 10);
    expect(run.stderr()).toMatch(
      new RegExp(
        `stopped at step ${stoppedAt}, after its newest checkpoint: a resume continues from step ${newest}; ` +
          `continue with: callosum train .*--resume ${runDir}`,
      ),
    );
  }, 120_000);

  it("a SIGINT while the task's data loads gives the start up at once, with no files left, also when the data never comes", async () => {
    const runDir = join(await temporaryDirectory('sigint-starting'), 'run');
    // The task's data never comes (its promise never settles): the run waits, saying so, and does not
    // exit by itself; the signal comes then.
    const child = spawn(
      process.execPath,
      [CLI_ENTRY, 'train', '--workers', '2', '--task', NEVER_LOADS_TASK, '--out', runDir],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    const loading = new Promise<void>((resolve) =>
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        if (stderr.includes('loading its data')) resolve();
      }),
    );
    let exitedAt: number | undefined;
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => {
        exitedAt = Date.now();
        resolve(code);
      }),
    );
    await loading;
    // Before, a promise nothing else waited on let the process exit with 0, saying nothing.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(exitedAt).toBeUndefined();
    expect(stderr).toContain(
      'coordinator: loading task never-loads (its model and data, checked on 2 samples)',
    );
    const signalledAt = Date.now();
    child.kill('SIGINT');
    expect(await exited).toBe(1);
    // Not after the 8 s a stop may take: the start was given up, not waited for.
    expect((exitedAt ?? Number.POSITIVE_INFINITY) - signalledAt).toBeLessThan(7_000);
    expect(stderr).toContain(
      'SIGINT: giving up the start (nothing is trained yet; a third signal exits at once)',
    );
    expect(stderr).toContain('COORDINATOR_STOPPING: interrupted by SIGINT');
    // Before, the signal was acknowledged and lost: the run trained until the 8 s cut it short.
    expect(stderr).not.toMatch(/step \d+\/|took longer than/);
    await expect(readdir(runDir)).rejects.toThrow(/ENOENT/);
  }, 120_000);

  it.each(['star', 'ring'])(
    'a %s run whose first worker is stopped (SIGSTOP) still stops on SIGTERM with a checkpoint and the resume command, well within the 8 s',
    async (topology) => {
      const runDir = await temporaryDirectory(`stopped-worker-${topology}`);
      const run = await trainingUntil(
        [...RUN, '--steps', '5000', '--topology', topology, '--out', runDir],
        runDir,
        5,
      );
      // The worker that joined first, which the ring used to ask first for the replica a checkpoint
      // needs, and wait on for the shard deadline (now the worker heard from last is asked first).
      const first = /worker w1 \((worker-\d),/.exec(run.stderr())?.[1];
      const victim = await workerProcess(run.child.pid as number, first as string);
      process.kill(victim, 'SIGSTOP');
      try {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        run.child.kill('SIGTERM');
        expect(await run.exited).toBe(1);
      } finally {
        // A stopped worker that was not reaped (the test failed) acts on the SIGTERM it was sent.
        try {
          process.kill(victim, 'SIGCONT');
        } catch {
          // Reaped already, as it should be.
        }
      }
      expect(run.stderr()).not.toContain('exiting without waiting');
      expect(run.stderr()).toMatch(new RegExp(`stopped; continue with: callosum train .*--resume ${runDir}`));
      // The stop's own checkpoint (--checkpoint-every 1000), of a step at least as far as the run got.
      const steps = (await readdir(join(runDir, 'checkpoints'))).map((name) =>
        Number(/^step-(\d{9})\.ckpt$/.exec(name)?.[1]),
      );
      expect(Math.max(...steps)).toBeGreaterThanOrEqual(5);
    },
    120_000,
  );

  it('SIGHUP (a closed terminal) stops the run as SIGTERM does: a checkpoint, and the resume command, with absolute paths', async () => {
    const runDir = await temporaryDirectory('sighup');
    // --data and --out relative to where the run started: the printed command must work from anywhere.
    const dataDir: string = inject('smallTestSetDir');
    const args = RUN.map((word) => (word === dataDir ? relative('/', dataDir) : word));
    const run = await trainingUntil([...args, '--out', relative('/', runDir)], runDir, 5, {}, '/');
    run.child.kill('SIGHUP');
    expect(await run.exited).toBe(1);
    expect(run.stderr()).toContain('SIGHUP: stopping after a checkpoint');
    expect(run.stderr()).toContain(
      `continue with: callosum train --workers 2 --data ${dataDir} --checkpoint-every 1000 --resume ${runDir}\n`,
    );
    const checkpoints = await readdir(join(runDir, 'checkpoints'));
    expect(checkpoints.some((name) => /^step-\d{9}\.ckpt$/.test(name))).toBe(true);
  }, 120_000);

  it('a stderr that can no longer be written (`2>&1 | head`, a closed terminal) stops the run with a checkpoint instead of killing it', async () => {
    const runDir = await temporaryDirectory('output-closed');
    // Long enough that a line comes mid-run after stderr is closed (the progress every 5 s, or the
    // first epoch's evaluation).
    const child = spawn(
      process.execPath,
      [
        CLI_ENTRY,
        'train',
        '--model',
        'mlp',
        '--workers',
        '2',
        '--epochs',
        '5',
        '--checkpoint-every',
        '1000',
        ...smallTestSetData(),
        '--out',
        runDir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let stderr = '';
    await new Promise<void>((resolve) =>
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        if (/step 1\//.test(stderr)) resolve();
      }),
    );
    child.stderr.destroy();
    expect(await exited).toBe(1);
    // Stopped through the normal path (before, the failed write killed the process): recorded, with the
    // step it stopped at checkpointed, so that the run can resume.
    const records = (await readFile(join(runDir, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; reason?: string; step?: number });
    const stopped = records.find((record) => record.type === 'stopped');
    expect(stopped?.reason).toMatch(/its output could not be written \(EPIPE\)/);
    const checkpoints = await readdir(join(runDir, 'checkpoints'));
    expect(checkpoints).toContain(`step-${String(stopped?.step).padStart(9, '0')}.ckpt`);
    await expect(readFile(join(runDir, 'summary.json'))).rejects.toThrow(/ENOENT/);
  }, 120_000);

  it("Ctrl-C to the terminal's process group stops the workers without dumping their stderr", async () => {
    const runDir = await temporaryDirectory('group-sigint');
    const run = await trainingUntil([...RUN, '--out', runDir], runDir, 3);
    process.kill(-(run.child.pid as number), 'SIGINT');
    expect(await run.exited).toBe(1);
    expect(run.stderr()).toMatch(/COORDINATOR_STOPPING: interrupted by SIGINT/);
    expect(run.stderr()).not.toMatch(/exited with SIGINT|its last lines/);
    expect(run.stderr()).not.toMatch(/^\s+at /m);
  }, 120_000);
});

/** The pid of the local worker process started with `--name name`, a child of the `callosum train` process `parent`. */
async function workerProcess(parent: number, name: string): Promise<number> {
  const children = await readFile(`/proc/${parent}/task/${parent}/children`, 'utf8');
  for (const pid of children.trim().split(/\s+/).map(Number)) {
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    if (args[args.indexOf('--name') + 1] === name) return pid;
  }
  throw new Error(`no worker process named ${name} under ${parent}`);
}
