import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunSummary } from '@callosum/coordinator';
import { loadLatestCheckpoint, loadModel } from '@callosum/core';
import { describe, expect, it } from 'vitest';
// fit from the built package: it starts its local workers through the built CLI (dist/bin.js).
import { earlyStopping, fit, type History, saveBestModel } from '../dist/index.js';
import { type Finished, lastJsonLine, runCli, runNodeScript, temporaryDirectory } from './processes.js';

// The TypeScript example that calls fit() (examples/fit-early-stopping/train.ts, compiled by the
// examples' build), run as a real program with its two worker processes.
const EXAMPLE = fileURLToPath(new URL('../../../examples/dist/fit-early-stopping/train.js', import.meta.url));
const EPOCHS = 100;
const PATIENCE = 3;

/**
 * The epoch at which Keras's EarlyStopping (val_loss, min_delta 0) stops, given the values seen: the
 * PATIENCE-th epoch in a row without a new best.
 */
function expectedStopEpoch(valLoss: readonly number[]): number | undefined {
  let best = Number.POSITIVE_INFINITY;
  let without = 0;
  for (const [epoch, value] of valLoss.entries()) {
    without = value < best ? 0 : without + 1;
    best = Math.min(best, value);
    if (without === PATIENCE) return epoch;
  }
  return undefined;
}

describe('fit() with validationSplit and EarlyStopping', () => {
  it('records per-epoch loss and val_loss, stops once val_loss stops improving, and keeps the best model', async () => {
    const out = await temporaryDirectory('fit');
    const run = await runNodeScript(EXAMPLE, ['--out', out, '--json'], { timeoutMs: 150_000 });
    expect(run.code, run.stderr).toBe(0);
    const { history, summary } = lastJsonLine<{ history: History; summary: RunSummary }>(run);
    const epochs = history.epoch.length;
    expect(history.epoch).toEqual([...Array(epochs).keys()]);
    for (const name of ['loss', 'mae', 'val_loss', 'val_mae'])
      expect(history.history[name], name).toHaveLength(epochs);
    // Stopped early, and exactly when the rule says: PATIENCE epochs after the best val_loss.
    const valLoss = history.history.val_loss as number[];
    expect(epochs).toBeLessThan(EPOCHS);
    expect(expectedStopEpoch(valLoss)).toBe(epochs - 1);
    expect(summary.epochs).toBeCloseTo(epochs, 6);
    // The training loss kept falling while val_loss did not: the model overfits, as the task intends.
    expect(history.history.loss?.at(-1)).toBeLessThan(history.history.loss?.[0] as number);
    // The best model was saved, and is a model tfjs loads.
    const best = await loadModel(join(out, 'best-model'));
    expect(best.outputs[0]?.shape).toEqual([null, 1]);
    best.dispose();
  }, 180_000);
});

describe('fit() listening for remote workers', () => {
  it('trains with `callosum worker --task` processes that connect to it, and calls onEpochEnd every epoch', async () => {
    const task = fileURLToPath(new URL('./fixtures/tasks/regression-task.mjs', import.meta.url));
    const token = 'fit-listen-test-token-0123456789';
    const workers: Promise<Finished>[] = [];
    const epochsSeen: number[] = [];
    const { history, summary } = await fit(task, {
      outDir: await temporaryDirectory('fit-listen'),
      epochs: 3,
      listen: { port: 0, token, minWorkers: 2 },
      callbacks: [{ onEpochEnd: (epoch) => void epochsSeen.push(epoch) }],
      log: (line) => {
        const url = /listening on (ws:\/\/\S+?)[,;]/.exec(line)?.[1];
        if (url === undefined) return;
        for (const name of ['remote-1', 'remote-2']) {
          workers.push(
            runCli(['worker', '--connect', url, '--task', task, '--name', name, '--threads', '1'], {
              env: { CALLOSUM_TOKEN: token },
            }),
          );
        }
      },
    });
    expect(summary).toMatchObject({ steps: 24, workers: 2 });
    expect(history.epoch).toEqual([0, 1, 2]);
    expect(epochsSeen).toEqual([0, 1, 2]);
    // fit evaluates validation data only, and this task has none (only a test split).
    expect(history.history.val_loss).toBeUndefined();
    expect(history.history.loss).toHaveLength(3);
    for (const run of await Promise.all(workers)) expect(run.code, run.stderr).toBe(0);
  }, 120_000);

  it('a callback that throws stops the run, its remote workers wait, and resume: true on the same port trains on with them', async () => {
    const task = fileURLToPath(new URL('./fixtures/tasks/regression-task.mjs', import.meta.url));
    const token = 'fit-listen-throws-token-0123456789';
    // A fixed port, so that the workers find the resumed run where they look for it.
    const port = await unusedPort();
    const workers: Promise<Finished>[] = [];
    const options = {
      outDir: await temporaryDirectory('fit-listen-throws'),
      epochs: 3,
      listen: { port, token, minWorkers: 2 },
      log: (line: string) => {
        if (workers.length > 0 || !line.includes(`listening on ws://127.0.0.1:${port}`)) return;
        for (const name of ['remote-1', 'remote-2']) {
          workers.push(
            runCli(
              [
                'worker',
                '--connect',
                `ws://127.0.0.1:${port}`,
                '--task',
                task,
                '--name',
                name,
                '--threads',
                '1',
              ],
              { env: { CALLOSUM_TOKEN: token } },
            ),
          );
        }
      },
    };
    // 512 samples, 8 steps an epoch: epoch 0 ends at step 8.
    const failure: unknown = await fit(task, {
      ...options,
      callbacks: [
        {
          onEpochEnd: (epoch) => {
            if (epoch === 0) throw new Error('stop after the first epoch');
          },
        },
      ],
    }).catch((error: unknown) => error);
    expect((failure as Error).message).toBe(
      'callbacks[0].onEpochEnd(0, …) threw Error: stop after the first epoch; the run stopped; its newest ' +
        `checkpoint (step 8) is in ${options.outDir}: fit with resume: true continues from there`,
    );
    const { history, summary } = await fit(task, { ...options, resume: true });
    expect(summary).toMatchObject({ steps: 24, workers: 2 });
    expect(history.epoch).toEqual([1, 2]);
    for (const run of await Promise.all(workers)) expect(run.code, run.stderr).toBe(0);
  }, 180_000);
});

/** A port nothing listens on now: bound, then closed. */
async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('fit() with a callback that throws', () => {
  it('rejects naming the callback and what it threw, leaves no worker process behind, and resume: true continues the run', async () => {
    const task = fileURLToPath(new URL('./fixtures/tasks/regression-task.mjs', import.meta.url));
    const lines: string[] = [];
    const thrown = new Error('this callback fails at epoch 2');
    // 384 training samples: 6 steps an epoch, 18 in all; epoch 2 (1 from 0) ends at step 12.
    const options = {
      outDir: await temporaryDirectory('fit-throws'),
      epochs: 3,
      workers: 2,
      threads: 1,
      validationSplit: 0.25,
      log: (line: string) => void lines.push(line),
    };
    const failure: unknown = await fit(task, {
      ...options,
      callbacks: [
        { onEpochEnd: () => {} },
        {
          onEpochEnd: (epoch) => {
            if (epoch === 1) throw thrown;
          },
        },
      ],
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toBe(
      'callbacks[1].onEpochEnd(1, …) threw Error: this callback fails at epoch 2; the run stopped; its newest ' +
        `checkpoint (step 12) is in ${options.outDir}: fit with resume: true continues from there`,
    );
    expect(failure).toMatchObject({ code: 'COORDINATOR_STOPPING', cause: thrown });
    const workers = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(' worker ') && line.includes(task));
    expect(workers).toEqual([]);
    // The workers had joined and trained before the callback failed, and were stopped, not failed.
    expect(lines.some((line) => /joined/.test(line))).toBe(true);
    expect(lines.filter((line) => /exited with/.test(line))).toEqual([]);

    // Without its validationSplit the run would train on all 512 samples: other batches, refused.
    const { validationSplit: _, ...withoutSplit } = options;
    await expect(fit(task, { ...withoutSplit, resume: true })).rejects.toThrow(
      /^the checkpoint's run trains on 384 samples, and this one has 512: its training data are not the run's/,
    );

    // The same options with resume: true continue from the checkpoint: the epoch left, on the same data.
    const epochsSeen: number[] = [];
    const { history, summary } = await fit(task, {
      ...options,
      resume: true,
      callbacks: [{ onEpochEnd: (epoch) => void epochsSeen.push(epoch) }],
    });
    expect(summary.steps).toBe(18);
    expect(history.epoch).toEqual([2]);
    expect(epochsSeen).toEqual([2]);
    expect(history.history.val_loss).toHaveLength(1);
    expect(lines).toContain(
      'fit: warning: resume continues the run with the options it started with; ignoring epochs',
    );
  }, 180_000);
});

describe('fit() with a batch callback that throws', () => {
  const task = fileURLToPath(new URL('./fixtures/tasks/regression-task.mjs', import.meta.url));

  it('names the batch and its epoch, checkpoints the step it was called after, and a resume counts on from there', async () => {
    const outDir = await temporaryDirectory('fit-batch-throws');
    const seenEpochs: number[] = [];
    // 384 training samples: 6 steps an epoch; batch 2 of epoch 1 is step 9.
    const failure: unknown = await fit(task, {
      outDir,
      epochs: 2,
      workers: 1,
      threads: 1,
      validationSplit: 0.25,
      log: () => {},
      callbacks: [
        {
          onBatchEnd: (batch) => {
            if (batch === 2 && seenEpochs.length === 1) throw new TypeError('bad batch');
          },
          onEpochEnd: (epoch) => void seenEpochs.push(epoch),
        },
      ],
    }).catch((error: unknown) => error);
    expect((failure as Error).message).toBe(
      'callbacks[0].onBatchEnd(2, …) of epoch 1 threw TypeError: bad batch; the run stopped; its newest ' +
        `checkpoint (step 9) is in ${outDir}: fit with resume: true continues from there`,
    );

    // Resumed, the batches go on counting within their epoch, and the epoch's figures are its batches'
    // since the resume.
    const batches: number[] = [];
    const { history } = await fit(task, {
      outDir,
      resume: true,
      workers: 1,
      threads: 1,
      validationSplit: 0.25,
      log: () => {},
      callbacks: [{ onBatchEnd: (batch) => void batches.push(batch) }],
    });
    expect(batches).toEqual([3, 4, 5]);
    expect(history.epoch).toEqual([1]);
    // expect.any(Number) would take NaN too.
    expect(history.history.loss?.map(Number.isFinite)).toEqual([true]);
    expect(history.history.val_loss?.map(Number.isFinite)).toEqual([true]);
  }, 120_000);

  it("an epoch's owed evaluation after a resume: its history entry has NaN training figures, so that every list has one entry per epoch", async () => {
    const outDir = await temporaryDirectory('fit-owed-evaluation');
    const options = { outDir, epochs: 2, workers: 1, threads: 1, validationSplit: 0.25, log: () => {} };
    // The last batch of epoch 0 (step 6) throws before its evaluation: the checkpoint at step 6 owes it.
    const failure: unknown = await fit(task, {
      ...options,
      callbacks: [
        {
          onBatchEnd: (batch) => {
            if (batch === 5) throw new Error('stop before the evaluation');
          },
        },
      ],
    }).catch((error: unknown) => error);
    expect((failure as Error).message).toContain('(step 6)');
    const { history } = await fit(task, { ...options, resume: true });
    expect(history.epoch).toEqual([0, 1]);
    expect(history.history.loss?.map(Number.isFinite)).toEqual([false, true]);
    expect(Number.isNaN(history.history.loss?.[0])).toBe(true);
    expect(history.history.val_loss?.map(Number.isFinite)).toEqual([true, true]);
  }, 120_000);
});

describe('fit() refusing what a program gets wrong, naming its own options', () => {
  const task = fileURLToPath(new URL('./fixtures/tasks/regression-task.mjs', import.meta.url));

  it('refuses an unknown backend, zero workers, an option it does not have and resume with overwrite before any worker starts', async () => {
    const lines: string[] = [];
    const outDir = await temporaryDirectory('fit-refusals');
    const log = (line: string) => void lines.push(line);
    // A JavaScript caller's typo: the type (BackendPreference) stops it in TypeScript.
    await expect(fit(task, { outDir, backend: 'wsam' as never, log })).rejects.toThrow(
      'unknown backend "wsam"; choose one of: auto, tensorflow, wasm, cpu',
    );
    await expect(fit(task, { outDir, workers: 0, log })).rejects.toThrow(
      'workers must be an integer >= 1, got 0',
    );
    // Keras's spelling, and a typo: they trained the task's own settings, silently.
    const keras = { outDir, log, validation_split: 0.25 } as never;
    await expect(fit(task, keras)).rejects.toThrow(
      'fit has no option "validation_split" (did you mean "validationSplit"?)',
    );
    await expect(fit(task, { outDir, log, epoch: 1 } as never)).rejects.toThrow(
      'fit has no option "epoch" (did you mean "epochs"?)',
    );
    await expect(fit(task, { outDir, log, resume: true, overwrite: true })).rejects.toThrow(
      'give resume or overwrite, not both',
    );
    await expect(fit(task, { outDir, log, callbacks: [{}, undefined] } as never)).rejects.toThrow(
      'callbacks[1] must be an object with onBatchEnd or onEpochEnd, got undefined',
    );
    expect(lines).toEqual([]);
  });

  it('refuses a number given as a string, naming the option and the type, before any worker starts', async () => {
    const lines: string[] = [];
    const outDir = await temporaryDirectory('fit-strings');
    const log = (line: string) => void lines.push(line);
    const given = (options: Record<string, unknown>) => fit(task, { outDir, log, ...options } as never);
    await expect(given({ epochs: '3' })).rejects.toThrow(
      'training config: epochs must be an integer >= 1, got "3" (a string)',
    );
    await expect(given({ validationSplit: '0.25' })).rejects.toThrow(
      'validationSplit must be a number in (0, 1), got "0.25" (a string)',
    );
    await expect(given({ workers: '2' })).rejects.toThrow(
      'workers must be an integer >= 1, got "2" (a string)',
    );
    await expect(given({ threads: '1' })).rejects.toThrow(
      'threads must be an integer >= 1, got "1" (a string)',
    );
    expect(lines.filter((line) => /worker/.test(line))).toEqual([]);
  });

  // Each before any worker starts: nothing logged about workers, and no run directory made.
  const refusedAtStart = async (
    name: string,
    refuse: (given: (options: object) => Promise<unknown>) => Promise<void>,
  ) => {
    const lines: string[] = [];
    const root = await temporaryDirectory(name);
    const log = (line: string) => void lines.push(line);
    await refuse((options) => fit(task, { outDir: join(root, 'run'), log, ...options } as never));
    expect(lines.filter((line) => /worker/.test(line))).toEqual([]);
    expect(await readdir(root)).toEqual([]);
  };

  it('refuses a callback method that is no function (which failed after the first epoch) or that fit does not call (never called)', async () => {
    await refusedAtStart('fit-callbacks', async (given) => {
      await expect(given({ callbacks: [{ onEpochEnd: 5 }] })).rejects.toThrow(
        'callbacks[0].onEpochEnd must be a function, got 5',
      );
      await expect(given({ callbacks: [{ onEpochEnds: () => {} }] })).rejects.toThrow(
        /^callbacks\[0\] has "onEpochEnds" \(did you mean "onEpochEnd"\?\), which fit does not know/,
      );
    });
  });

  it("refuses a listen option it does not have, and a host beyond loopback without a token in fit's own words", async () => {
    await refusedAtStart('fit-listen-checked', async (given) => {
      // A misspelt port listened on a free one.
      await expect(given({ listen: { prot: 1234 } })).rejects.toThrow(
        'fit listen has no option "prot" (did you mean "port"?); options: host, port, token, minWorkers',
      );
      // Not CALLOSUM_TOKEN, --token-file or --insecure, which fit does not have.
      await expect(given({ listen: { host: '0.0.0.0' } })).rejects.toThrow(
        'fit: refusing to listen on 0.0.0.0 without a token: give listen.token, the secret the workers are given ' +
          'as CALLOSUM_TOKEN (fit does not read CALLOSUM_TOKEN itself), or listen on loopback (the default host, 127.0.0.1)',
      );
    });
  });

  it('refuses gpus given as a string, which was taken apart character by character', async () => {
    await refusedAtStart('fit-gpus', async (given) => {
      for (const gpus of ['01', '0,1']) {
        await expect(given({ gpus })).rejects.toThrow(
          `gpus must be a list of GPU indices or UUIDs as strings (e.g. ['0', '1']; [] assigns none), got "${gpus}" (a string)`,
        );
      }
    });
  });

  it("refuses a missing outDir by its name, not with Node's ERR_INVALID_ARG_TYPE", async () => {
    await expect(fit(task, { log: () => {} } as never)).rejects.toThrow(
      'fit: outDir (the run directory) is required: a non-empty path, got undefined',
    );
  });

  it('two fits starting at once in one outDir: one trains, the other is told the directory is in use, naming outDir', async () => {
    const outDir = join(await temporaryDirectory('fit-twice'), 'run');
    const options = { outDir, epochs: 1, workers: 1, threads: 1, log: () => {} };
    const [first, second] = await Promise.allSettled([fit(task, options), fit(task, options)]);
    const results = [first, second].filter((result) => result?.status === 'fulfilled');
    const refusals = [first, second].flatMap((result) =>
      result?.status === 'rejected' ? [(result.reason as Error).message] : [],
    );
    expect(results).toHaveLength(1);
    expect(refusals).toHaveLength(1);
    // Which one the loser finds first depends on timing: the directory the winner made, or its lock.
    expect(refusals[0]).toMatch(
      new RegExp(
        `^${outDir} is in use by another (run starting in it at the same time \\(it created ${outDir}(/checkpoints)? first: EEXIST\\): ` +
          'start this run in another directory \\(--out; outDir from a program\\)|coordinator \\(pid \\d+ on this machine\\))',
      ),
    );
  }, 120_000);

  it("takes an optimizer by name, as a task's optimizer and --optimizer are given", async () => {
    const outDir = await temporaryDirectory('fit-optimizer-name');
    await fit(task, { outDir, epochs: 1, workers: 1, threads: 1, optimizer: 'sgd', log: () => {} });
    const { checkpoint } = await loadLatestCheckpoint(join(outDir, 'checkpoints'), () => {});
    expect(checkpoint.config.optimizer).toEqual({ name: 'sgd' });
  }, 120_000);

  it("refuses a monitored figure the epoch logs will not have before the first step, naming the logs' figures", async () => {
    const outDir = join(await temporaryDirectory('fit-monitor'), 'run');
    const batches: number[] = [];
    const options = {
      outDir,
      epochs: 2,
      workers: 1,
      threads: 1,
      log: () => {},
      callbacks: [{ onBatchEnd: (batch: number) => void batches.push(batch) }],
    };
    // A typo: the task measures mae, not accuracy, and fit gives it validation data.
    const typo = { ...options, validationSplit: 0.25 };
    await expect(
      fit(task, { ...typo, callbacks: [...options.callbacks, earlyStopping({ monitor: 'val_los' })] }),
    ).rejects.toThrow(
      /^callbacks\[1\] monitors "val_los" \(did you mean "val_loss"\?\), which the epoch logs will not have: they have loss, mae, val_loss, val_mae$/,
    );
    // Without validation data there are no val_ figures.
    await expect(
      fit(task, { ...options, callbacks: [saveBestModel({ dir: join(outDir, 'best') })] }),
    ).rejects.toThrow(
      'callbacks[0] monitors "val_loss", which the epoch logs will not have: they have loss, mae; val_ figures need validation data',
    );
    // Refused before any step: no batch was trained, and the run directory is gone again.
    expect(batches).toEqual([]);
    expect(await readdir(dirname(outDir))).toEqual([]);
  }, 60_000);

  it('refuses to train again into a finished run unless told to overwrite, which moves it aside', async () => {
    const outDir = await temporaryDirectory('fit-again');
    const options = { outDir, epochs: 1, workers: 1, threads: 1, log: () => {} };
    expect((await fit(task, options)).summary.steps).toBe(8);
    await expect(fit(task, options)).rejects.toThrow(
      /already holds a finished run .*overwrite: true from a program/,
    );
    expect((await fit(task, { ...options, overwrite: true })).summary.steps).toBe(8);
    const moved = (await readdir(outDir)).filter((name) => name.startsWith('replaced-'));
    expect(moved).toHaveLength(1);
    expect(await readdir(join(outDir, moved[0] as string))).toContain('summary.json');
  }, 120_000);
});
