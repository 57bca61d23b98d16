import { mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  isCallosumError,
  loadMnist,
  type MnistDataset,
} from '@callosum/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator.js';
import type { CoordinatorOptions } from '../options.js';
import { inlineWorker } from '../test-support/inline-worker.js';
import { LOCK_FILE, lockTemporary, RunFiles } from './run-directory.js';

// What a resume checks before it continues a run: which checkpoint it may continue from, its run's
// marker, and a run directory on a full disk. Real runs of a small model with one in-process worker
// over loopback, and real files: the full disk is a link to /dev/full (ENOSPC on every write).
const training = {
  model: { name: 'mlp', options: { hidden: [8] } },
  batchSize: 32,
  maxSteps: 6,
  seed: 7,
  schedule: { kind: 'constant' as const },
  maxShift: 0,
};
let dataset: MnistDataset;
let root: string;

beforeAll(async () => {
  dataset = await loadMnist();
  root = await mkdtemp(join(tmpdir(), 'callosum-resume-checks-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

type Options = Partial<CoordinatorOptions> & { outDir: string };

/** Runs to the end; `checkpointEverySteps` (2, or 'none' given) comes before `options`. */
async function run(options: Options, log: string[] = [], checkpointEverySteps: number | 'none' = 2) {
  const coordinator = await startCoordinator({
    dataset,
    training,
    ...(checkpointEverySteps === 'none' ? {} : { checkpointEverySteps }),
    log: (line) => log.push(line),
    ...options,
  });
  const worker = inlineWorker(coordinator.url);
  const summary = await coordinator.result;
  await worker;
  return summary;
}

async function startError(options: Options, log: string[] = []): Promise<Error> {
  try {
    const coordinator = await startCoordinator({
      dataset,
      training,
      log: (line) => log.push(line),
      ...options,
    });
    await coordinator.stop('unexpected start');
  } catch (error) {
    return error as Error;
  }
  throw new Error('the coordinator started');
}

const checkpointPath = (outDir: string, step: number) =>
  join(outDir, RunFiles.CHECKPOINTS, `step-${String(step).padStart(9, '0')}.ckpt`);

/**
 * A finished run of 6 steps, checkpointed at steps 2, 4 and 6, made to look stopped after step 6 (its
 * summary removed). Returns its directory and its step-6 checkpoint's bytes, to compare a resumed run's with.
 */
async function stoppedRun(name: string, options: Partial<CoordinatorOptions> = {}) {
  const outDir = join(root, name);
  await run({ outDir, ...options });
  await rm(join(outDir, RunFiles.SUMMARY));
  const finalBytes = await readFile(checkpointPath(outDir, 6));
  return { outDir, final: decodeCheckpoint(finalBytes, 'final') };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('a resume continues from the newest checkpoint usable for the run', () => {
  it("skips a checkpoint of another run's config, and one whose header was changed, continuing bit-identically from an older one", async () => {
    const { outDir, final } = await stoppedRun('fallback');
    const other = join(root, 'fallback-other');
    await run({ outDir: other, training: { ...training, seed: 8 } });
    // The newest is another run's; the one before it has a header whose step was changed, same length.
    await writeFile(checkpointPath(outDir, 6), await readFile(checkpointPath(other, 6)));
    const four = (await readFile(checkpointPath(outDir, 4))).toString('latin1');
    await writeFile(checkpointPath(outDir, 4), Buffer.from(four.replace('"step":4', '"step":5'), 'latin1'));
    const log: string[] = [];
    const summary = await run({ outDir, resume: true }, log);
    expect(summary.steps).toBe(6);
    const text = log.join('\n');
    const setAside = (step: number) =>
      `set aside as step-00000000${step}.ckpt.unusable, neither tried again nor counted among the checkpoints kept; trying an older one`;
    expect(text).toContain(
      `checkpoint ${checkpointPath(outDir, 6)} is unusable (its training config is not that of the run recorded ` +
        `in ${join(outDir, RunFiles.MARKER)}: it belongs to another run); ${setAside(6)}`,
    );
    expect(text).toContain(
      `checkpoint ${checkpointPath(outDir, 4)} is unusable (checksum mismatch); ${setAside(4)}`,
    );
    expect(text).toContain(`resuming from ${checkpointPath(outDir, 2)} after step 2 of 6`);
    // Steps 3 to 6 again, as the run computed them: the same weights and optimizer state, to the bit.
    const again = decodeCheckpoint(await readFile(checkpointPath(outDir, 6)), 'again');
    expect(again.weights).toEqual(final.weights);
    expect(again.optimizer).toEqual(final.optimizer);
    // The files skipped are kept aside, under names that are no checkpoint's.
    expect((await readdir(join(outDir, RunFiles.CHECKPOINTS))).sort()).toEqual([
      'step-000000002.ckpt',
      'step-000000004.ckpt',
      'step-000000004.ckpt.unusable',
      'step-000000006.ckpt',
      'step-000000006.ckpt.unusable',
    ]);
  });

  it('never prunes its own new checkpoints for unusable newer files it skipped (they are set aside)', async () => {
    const { outDir, final } = await stoppedRun('prune-skipped');
    // Three newer files than the step-2 checkpoint, none usable (a header step other than the name's):
    // left in place, they would be the 3 newest kept, and steps 4 and 6 pruned as soon as written.
    const six = await readFile(checkpointPath(outDir, 6));
    for (const step of [7, 8, 9]) await writeFile(checkpointPath(outDir, step), six);
    for (const step of [4, 6]) await rm(checkpointPath(outDir, step));
    const log: string[] = [];
    expect((await run({ outDir, resume: true }, log)).steps).toBe(6);
    expect((await readdir(join(outDir, RunFiles.CHECKPOINTS))).sort()).toEqual([
      'step-000000002.ckpt',
      'step-000000004.ckpt',
      'step-000000006.ckpt',
      'step-000000007.ckpt.unusable',
      'step-000000008.ckpt.unusable',
      'step-000000009.ckpt.unusable',
    ]);
    expect(log.join('\n')).toContain(
      `checkpoint ${checkpointPath(outDir, 9)} is unusable (its header says step 6, its name step 9); ` +
        'set aside as step-000000009.ckpt.unusable',
    );
    expect(log.join('\n')).toContain(`resuming from ${checkpointPath(outDir, 2)} after step 2 of 6`);
    const again = decodeCheckpoint(await readFile(checkpointPath(outDir, 6)), 'again');
    expect(again.weights).toEqual(final.weights);
  });

  it('with no usable checkpoint, names each one and why', async () => {
    const { outDir } = await stoppedRun('none-usable');
    const other = join(root, 'none-usable-other');
    await run({ outDir: other, training: { ...training, seed: 9 } });
    for (const step of [2, 4, 6]) {
      await writeFile(checkpointPath(outDir, step), await readFile(checkpointPath(other, step)));
    }
    await writeFile(checkpointPath(outDir, 4), 'not a checkpoint');
    const log: string[] = [];
    const error = await startError({ outDir, resume: true }, log);
    expect(isCallosumError(error, 'ARTIFACT_INVALID'), String(error)).toBe(true);
    const foreign = `its training config is not that of the run recorded in ${join(outDir, RunFiles.MARKER)}: it belongs to another run`;
    expect(error.message).toBe(
      `none of the 3 checkpoints in ${join(outDir, RunFiles.CHECKPOINTS)} is usable: ` +
        `step-000000006.ckpt (${foreign}); step-000000004.ckpt (not a Callosum checkpoint (bad magic)); ` +
        `step-000000002.ckpt (${foreign})`,
    );
    expect(log.filter((line) => line.includes('is unusable'))).toHaveLength(3);
    // Nothing resumed: every file is left as it was, under its name.
    expect((await readdir(join(outDir, RunFiles.CHECKPOINTS))).sort()).toEqual([
      'step-000000002.ckpt',
      'step-000000004.ckpt',
      'step-000000006.ckpt',
    ]);
  });
});

describe('a resumed run whose marker (callosum-run.json) is gone', () => {
  it('is refused when its checkpoints show it had one; given every stored setting, it continues with them, saying so', async () => {
    const { outDir, final } = await stoppedRun('marker-deleted');
    await rm(checkpointPath(outDir, 6));
    await rm(join(outDir, RunFiles.MARKER));
    const error = await startError({ outDir, resume: true });
    expect(isCallosumError(error, 'ARTIFACT_INVALID'), String(error)).toBe(true);
    expect(error.message).toMatch(
      `${outDir} holds checkpoints but no callosum-run.json, which the Callosum that wrote them writes first: ` +
        'it was deleted or lost',
    );
    expect(error.message).toContain(`Put ${join(outDir, RunFiles.MARKER)} back`);
    // Refused before anything changed: no marker, no new checkpoint.
    expect(await exists(join(outDir, RunFiles.MARKER))).toBe(false);
    expect((await readdir(join(outDir, RunFiles.CHECKPOINTS))).sort()).toEqual([
      'step-000000002.ckpt',
      'step-000000004.ckpt',
    ]);

    const log: string[] = [];
    const summary = await run(
      { outDir, resume: true, checkpointEverySteps: 2, topology: 'star', wireDtype: 'float32' },
      log,
    );
    expect(summary.steps).toBe(6);
    expect(log).toContain(
      `coordinator: warning: ${outDir} holds checkpoints but no callosum-run.json (it was deleted or lost): ` +
        'the run continues under a new run id with checkpoint every 2 steps, topology star, wire dtype float32 ' +
        '(as given), and gets a new callosum-run.json',
    );
    expect(JSON.parse(await readFile(join(outDir, RunFiles.MARKER), 'utf8')).settings).toEqual({
      checkpointEverySteps: 2,
      topology: 'star',
      wireDtype: 'float32',
      peerTls: false,
    });
    const again = decodeCheckpoint(await readFile(checkpointPath(outDir, 6)), 'again');
    expect(again.weights).toEqual(final.weights);
  });

  it('resumed as a ring, is refused unless peer TLS is given too (a ring that reduced over TLS would go on in plaintext)', async () => {
    const { outDir } = await stoppedRun('marker-deleted-ring');
    await rm(join(outDir, RunFiles.MARKER));
    const given = { checkpointEverySteps: 2, topology: 'ring', wireDtype: 'float32' } as const;
    const log: string[] = [];
    const error = await startError({ outDir, resume: true, ...given }, log);
    expect(isCallosumError(error, 'ARTIFACT_INVALID'), String(error)).toBe(true);
    expect(error.message).toContain(
      'and with --topology ring whether its workers reduce over TLS (--peer-tls yes or --peer-tls no, of ' +
        'callosum coordinator; peerTls), to continue with those',
    );
    expect(await exists(join(outDir, RunFiles.MARKER))).toBe(false);
    // Stated: the run starts (and is stopped here: the test has no ring workers), saying what it continues with.
    const coordinator = await startCoordinator({
      dataset,
      training,
      outDir,
      resume: true,
      ...given,
      peerTls: false,
      log: (line) => log.push(line),
    });
    await coordinator.stop('stopped by the test');
    await coordinator.result.catch(() => {});
    expect(log).toContain(
      `coordinator: warning: ${outDir} holds checkpoints but no callosum-run.json (it was deleted or lost): ` +
        'the run continues under a new run id with checkpoint every 2 steps, topology ring without peer TLS, ' +
        'wire dtype float32 (as given), and gets a new callosum-run.json',
    );
  });

  it('of a run from before markers (its checkpoints record no training set size): continues, naming the settings it assumes', async () => {
    const { outDir } = await stoppedRun('before-markers');
    await rm(checkpointPath(outDir, 6));
    await rm(join(outDir, RunFiles.MARKER));
    // What a version from before markers wrote: format 1, without the training set's size.
    for (const step of [2, 4]) {
      const { datasetSize: _, ...older } = decodeCheckpoint(
        await readFile(checkpointPath(outDir, step)),
        'x',
      );
      await writeFile(checkpointPath(outDir, step), encodeCheckpoint(older, 1));
    }
    const log: string[] = [];
    // Given no setting: it cannot know the run's, and takes the defaults.
    expect((await run({ outDir, resume: true }, log, 'none')).steps).toBe(6);
    expect(log).toContain(
      `coordinator: warning: ${outDir} holds checkpoints but no callosum-run.json (a run from before run ` +
        'markers, or its marker was deleted): the run continues under a new run id with checkpoint every 100 ' +
        'steps, topology star, wire dtype float32 (the defaults, where --checkpoint-every, --topology, ' +
        '--wire-dtype give none), and gets a new callosum-run.json',
    );
  });
});

describe('a run directory on a full disk', () => {
  it('fails with WRITE_FAILED naming the lock file and the device, and leaves no lock behind', async () => {
    const { outDir } = await stoppedRun('full-disk');
    const lock = join(outDir, LOCK_FILE);
    // This process's write of the lock lands on a full disk.
    const temporary = `${lock}.${process.pid}.full.tmp`;
    await symlink('/dev/full', temporary);
    const randomPath = lockTemporary.path;
    lockTemporary.path = () => temporary;
    const error = await startError({ outDir, resume: true }).finally(() => {
      lockTemporary.path = randomPath;
    });
    expect(isCallosumError(error, 'WRITE_FAILED'), String(error)).toBe(true);
    expect(error.message).toBe(`cannot write ${lock}: no space left on the device holding ${outDir}`);
    expect((await readdir(outDir)).filter((name) => name.startsWith(LOCK_FILE))).toEqual([]);
    // With space again, the same command resumes the run.
    expect((await run({ outDir, resume: true })).steps).toBe(6);
    expect(await exists(lock)).toBe(false);
  });
});

describe('the lock', () => {
  it('is written through a temporary file of its own, never one another coordinator of the same pid writes (pid 1 in two containers on a shared volume)', async () => {
    const { outDir } = await stoppedRun('lock-temporary');
    // The file another coordinator of this pid would be writing its claim to, as the lock's temporary
    // file was named before it had a random part: it must be neither written over nor removed.
    const theirs = join(outDir, `${LOCK_FILE}.${process.pid}.tmp`);
    await writeFile(theirs, '{"pid":1,"host":"another-container"}\n');
    expect((await run({ outDir, resume: true })).steps).toBe(6);
    expect(await readFile(theirs, 'utf8')).toBe('{"pid":1,"host":"another-container"}\n');
    expect((await readdir(outDir)).filter((name) => name.startsWith(LOCK_FILE))).toEqual([
      `${LOCK_FILE}.${process.pid}.tmp`,
    ]);
    // Two lock files' temporary names are never the same.
    expect(lockTemporary.path(join(outDir, LOCK_FILE))).not.toBe(lockTemporary.path(join(outDir, LOCK_FILE)));
  });
});
