import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { onFullDisk } from '../io/test-support.js';
import { callosumError } from '../optim/test-support.js';
import {
  type Checkpoint,
  decodeCheckpoint,
  encodeCheckpoint,
  loadLatestCheckpoint,
  newestCheckpointStep,
  writeCheckpoint,
} from './checkpoint.js';
import { DEFAULT_TRAINING_CONFIG } from './config.js';
import { TrainingState } from './training-state.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'callosum-checkpoint-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A small run advanced by `steps` optimizer steps with made-up gradients. */
function advancedState(steps: number): TrainingState {
  const state = new TrainingState(
    { ...DEFAULT_TRAINING_CONFIG, batchSize: 10 },
    new Float32Array(50).fill(0.5),
    1000,
  );
  for (let step = 0; step < steps; step++) {
    const meanGradient = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i + step));
    state.applyStep({ meanGradient, lossSum: 1, correct: 1, metricSums: [], count: 10 });
  }
  return state;
}

const warnings: string[] = [];
const warn = (line: string) => warnings.push(line);
beforeEach(() => {
  warnings.length = 0;
});

/** A checkpoint file's header, and where its body starts. */
function split(bytes: Buffer): { header: Record<string, unknown>; bodyStart: number } {
  const length = bytes.readUInt32LE(8);
  return { header: JSON.parse(bytes.subarray(12, 12 + length).toString('utf8')), bodyStart: 12 + length };
}

/**
 * `bytes` (a checkpoint of format `version`) with its header edited by `edit`, and a version-2 file's
 * digest made anew over the result, as a writer would: a header that is wrong, not damaged.
 */
function sealed(bytes: Buffer, edit: (header: Record<string, unknown>) => void, version: 1 | 2): Buffer {
  const { header, bodyStart } = split(bytes);
  edit(header);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(12);
  bytes.copy(prefix, 0, 0, 8);
  prefix.writeUInt32LE(json.length, 8);
  const body = bytes.subarray(bodyStart, version === 2 ? bytes.length - 32 : bytes.length);
  const unsealed = Buffer.concat([prefix, json, body]);
  return version === 1 ? unsealed : Buffer.concat([unsealed, createHash('sha256').update(unsealed).digest()]);
}

describe('checkpoints', () => {
  it('round-trip the whole training state, and a restored run continues bit-identically', () => {
    const original = advancedState(7);
    const restored = TrainingState.restore(
      decodeCheckpoint(encodeCheckpoint(original.checkpoint()), 'mem'),
      1000,
    );
    expect(restored.step).toBe(7);
    expect(restored.position).toEqual(original.position);
    expect(restored.batchIndices()).toEqual(original.batchIndices());
    const gradient = {
      meanGradient: new Float32Array(50).fill(0.25),
      lossSum: 1,
      correct: 1,
      metricSums: [],
      count: 10,
    };
    original.applyStep(gradient);
    restored.applyStep(gradient);
    expect(restored.weights).toEqual(original.weights);
    expect(restored.optimizer.exportState()).toEqual(original.optimizer.exportState());
  });

  it('detects truncation, a flipped byte and a wrong magic, naming the file', () => {
    for (const version of [2, 1] as const) {
      const bytes = encodeCheckpoint(advancedState(2).checkpoint(), version);
      expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 1), 'a.ckpt')).toThrow(
        version === 2 ? /a\.ckpt: checksum mismatch/ : /a\.ckpt: body has/,
      );
      const flipped = Buffer.from(bytes);
      flipped[flipped.length - 40] = (flipped[flipped.length - 40] as number) ^ 0x40;
      expect(() => decodeCheckpoint(flipped, 'b.ckpt')).toThrow(/b\.ckpt: checksum mismatch/);
    }
    expect(() => decodeCheckpoint(Buffer.from('hello world, not a checkpoint'), 'c.ckpt')).toThrow(
      /bad magic/,
    );
  });

  it('writes format version 2, whose SHA-256 covers the header too: an edited step, seed or optimizer step is detected', () => {
    const bytes = encodeCheckpoint(advancedState(100).checkpoint());
    const { header } = split(bytes);
    expect(header.formatVersion).toBe(2);
    expect(header.bodySha256).toBeUndefined();
    const edits: [string, string][] = [
      ['"step":100', '"step":160'],
      [`"seed":${DEFAULT_TRAINING_CONFIG.seed},`, `"seed":${DEFAULT_TRAINING_CONFIG.seed + 1},`],
      // A damaged version digit cannot make it a version-1 file that is checked less.
      ['"formatVersion":2', '"formatVersion":1'],
    ];
    for (const [from, to] of edits) {
      const text = bytes.toString('latin1');
      expect(text).toContain(from);
      // Same length: the header's length field and the body stay where they were.
      expect(to.length).toBe(from.length);
      const damaged = Buffer.from(text.replace(from, to), 'latin1');
      expect(() => decodeCheckpoint(damaged, 'h.ckpt'), `${from} → ${to}`).toThrow(
        /h\.ckpt: (checksum mismatch|header: bodySha256)/,
      );
    }
    // The optimizer's step count, edited: the last "step" of the header is the optimizer's.
    const text = bytes.toString('latin1');
    const at = text.lastIndexOf('"step":100');
    const optimizerEdited = Buffer.from(`${text.slice(0, at)}"step":101${text.slice(at + 10)}`, 'latin1');
    expect(() => decodeCheckpoint(optimizerEdited, 'o.ckpt')).toThrow(/o\.ckpt: checksum mismatch/);
  });

  it('still reads format version 1 (checkpoints of runs written before), and a run restored from one continues bit-identically', () => {
    const original = advancedState(7);
    const bytes = encodeCheckpoint(original.checkpoint(), 1);
    expect(split(bytes).header).toMatchObject({ formatVersion: 1, bodySha256: expect.any(String) });
    const restored = TrainingState.restore(decodeCheckpoint(bytes, 'v1.ckpt'), 1000);
    const gradient = {
      meanGradient: new Float32Array(50).fill(0.25),
      lossSum: 1,
      correct: 1,
      metricSums: [],
      count: 10,
    };
    original.applyStep(gradient);
    restored.applyStep(gradient);
    expect(restored.step).toBe(8);
    expect(restored.weights).toEqual(original.weights);
    expect(restored.optimizer.exportState()).toEqual(original.optimizer.exportState());
  });

  it('reads the header through its schema: a bad or contradictory field is named, never trusted', () => {
    const checkpoint = advancedState(1).checkpoint();
    const contradictory = { ...checkpoint, config: { ...checkpoint.config, microBatchSize: 11 } };
    expect(() => decodeCheckpoint(encodeCheckpoint(contradictory), 'd.ckpt')).toThrow(
      'd.ckpt: header: config.microBatchSize (at most the global batch size) must be an integer in 1..10, got 11',
    );
    for (const version of [1, 2] as const) {
      const bytes = encodeCheckpoint(checkpoint, version);
      // An edited header, its version-2 digest made anew: what a writer with a bug would write.
      const edited = (edit: (header: Record<string, unknown>) => void): Buffer =>
        sealed(bytes, edit, version);
      expect(
        decodeCheckpoint(
          edited(() => {}),
          'e.ckpt',
        ).step,
      ).toBe(1);
      // A fully trainable model's optimizer slots are as long as its weights: the header says nothing more.
      edited((header) => expect(header.slotLength).toBeUndefined());
      const cases: [(header: Record<string, unknown>) => void, RegExp][] = [
        [(header) => (header.formatVersion = 3), /e\.ckpt: header: formatVersion must be 1 or 2 .*got 3/],
        [(header) => delete header.step, /e\.ckpt: header: step must be an integer >= 0, got undefined/],
        [
          (header) => (header.parameterCount = -50),
          /e\.ckpt: header: parameterCount must be an integer >= 0/,
        ],
        [
          (header) => ((header.config as Record<string, unknown>).epochs = 0),
          /header: config\.epochs must be/,
        ],
        [
          (header) => delete (header.config as Record<string, unknown>).batchSize,
          /header: config\.batchSize/,
        ],
        [
          (header) => (header.slotLength = 51),
          /e\.ckpt: header: slotLength 51 is more than the 50 parameters/,
        ],
        [(header) => (header.slotLength = 49), /e\.ckpt: body has 600 bytes, header describes 592/],
      ];
      for (const [edit, message] of cases) {
        expect(() => decodeCheckpoint(edited(edit), 'e.ckpt')).toThrow(message);
        expect(() => decodeCheckpoint(edited(edit), 'e.ckpt')).toThrow(
          expect.objectContaining({ code: 'ARTIFACT_INVALID' }),
        );
      }
    }
  });

  it('keeps the newest K, and falls back to the previous checkpoint when the newest is corrupt', async () => {
    for (const steps of [1, 2, 3, 4]) await writeCheckpoint(dir, advancedState(steps).checkpoint(), 3);
    expect(await readdir(dir)).toEqual(['step-000000002.ckpt', 'step-000000003.ckpt', 'step-000000004.ckpt']);
    await truncate(join(dir, 'step-000000004.ckpt'), 100);
    const { checkpoint, path } = await loadLatestCheckpoint(dir, warn);
    expect(checkpoint.step).toBe(3);
    expect(path).toMatch(/step-000000003\.ckpt$/);
    expect(warnings.at(-1)).toMatch(/step-000000004\.ckpt is unusable/);
  });

  it("skips a checkpoint whose header step is not its name's (a damaged format-1 header), with a warning, and resumes from the older one", async () => {
    for (const steps of [80, 100]) await writeCheckpoint(dir, advancedState(steps).checkpoint(), 3);
    const newest = join(dir, 'step-000000100.ckpt');
    // A format-1 file (as runs written before wrote them) whose header's step was damaged, same length.
    const v1 = encodeCheckpoint(advancedState(100).checkpoint(), 1).toString('latin1');
    await writeFile(newest, Buffer.from(v1.replace('"step":100', '"step":160'), 'latin1'));
    const { checkpoint, path } = await loadLatestCheckpoint(dir, warn);
    expect(checkpoint.step).toBe(80);
    expect(path).toBe(join(dir, 'step-000000080.ckpt'));
    expect(warnings).toEqual([
      `checkpoint ${newest} is unusable (its header says step 160, its name step 100); trying an older one`,
    ]);
  });

  it('skips a checkpoint of a format-2 file whose header was edited, naming the checksum', async () => {
    for (const steps of [80, 100]) await writeCheckpoint(dir, advancedState(steps).checkpoint(), 3);
    const newest = join(dir, 'step-000000100.ckpt');
    const text = (await readFile(newest)).toString('latin1');
    await writeFile(newest, Buffer.from(text.replace('"step":100', '"step":160'), 'latin1'));
    expect((await loadLatestCheckpoint(dir, warn)).checkpoint.step).toBe(80);
    expect(warnings).toEqual([`checkpoint ${newest} is unusable (checksum mismatch); trying an older one`]);
  });

  it('skips a checkpoint past the end of its run, and one the caller refuses (another run), trying older ones; with none usable, names each file and why', async () => {
    // A run of 2 epochs of 100 batches: 200 steps.
    await writeCheckpoint(dir, advancedState(50).checkpoint(), 5);
    await writeCheckpoint(dir, advancedState(60).checkpoint(), 5);
    await writeCheckpoint(dir, { ...advancedState(60).checkpoint(), step: 900 }, 5);
    const otherRun = (checkpoint: Checkpoint) => {
      if (checkpoint.step === 60) throw new Error("its training config is not the run's");
    };
    const { checkpoint } = await loadLatestCheckpoint(dir, warn, otherRun);
    expect(checkpoint.step).toBe(50);
    expect(warnings).toEqual([
      `checkpoint ${join(dir, 'step-000000900.ckpt')} is unusable (its step 900 is past the end of its run (200 steps)); trying an older one`,
      `checkpoint ${join(dir, 'step-000000060.ckpt')} is unusable (its training config is not the run's); trying an older one`,
    ]);
    await truncate(join(dir, 'step-000000050.ckpt'), 100);
    const failure = await loadLatestCheckpoint(dir, warn, otherRun).catch((error: unknown) => error);
    expect(failure).toEqual(
      callosumError(
        'ARTIFACT_INVALID',
        `none of the 3 checkpoints in ${dir} is usable: ` +
          'step-000000900.ckpt (its step 900 is past the end of its run (200 steps)); ' +
          "step-000000060.ckpt (its training config is not the run's); " +
          'step-000000050.ckpt (truncated header)',
      ),
    );
    expect(warnings.at(-1)).toMatch(/step-000000050\.ckpt is unusable \(.*\); there is no older one$/);
  });

  it('on a resume, sets the files it skipped aside, so that pruning keeps the checkpoints written after it', async () => {
    for (const steps of [10, 20]) await writeCheckpoint(dir, advancedState(steps).checkpoint(), 3);
    // Three newer names, unusable: their headers say step 20.
    const twenty = await readFile(join(dir, 'step-000000020.ckpt'));
    for (const step of [70, 80, 90]) await writeFile(join(dir, `step-0000000${step}.ckpt`), twenty);
    await rm(join(dir, 'step-000000020.ckpt'));
    // Read only (no setAside): the files stay as they are.
    expect((await loadLatestCheckpoint(dir, warn)).checkpoint.step).toBe(10);
    expect(await readdir(dir)).toHaveLength(4);
    warnings.length = 0;
    const { checkpoint } = await loadLatestCheckpoint(dir, warn, undefined, { setAside: true });
    expect(checkpoint.step).toBe(10);
    expect(warnings).toEqual(
      [90, 80, 70].map(
        (step) =>
          `checkpoint ${join(dir, `step-0000000${step}.ckpt`)} is unusable (its header says step 20, its name step ${step}); ` +
          `set aside as step-0000000${step}.ckpt.unusable, neither tried again nor counted among the checkpoints kept; trying an older one`,
      ),
    );
    for (const steps of [20, 30]) await writeCheckpoint(dir, advancedState(steps).checkpoint(), 3);
    expect((await readdir(dir)).sort()).toEqual([
      'step-000000010.ckpt',
      'step-000000020.ckpt',
      'step-000000030.ckpt',
      'step-000000070.ckpt.unusable',
      'step-000000080.ckpt.unusable',
      'step-000000090.ckpt.unusable',
    ]);
    expect((await loadLatestCheckpoint(dir, warn)).checkpoint.step).toBe(30);
  });

  it('with none usable, sets nothing aside', async () => {
    await writeFile(join(dir, 'step-000000010.ckpt'), 'not a checkpoint');
    const failure = await loadLatestCheckpoint(dir, warn, undefined, { setAside: true }).catch(
      (error: unknown) => error,
    );
    expect(failure).toEqual(
      callosumError('ARTIFACT_INVALID', `none of the 1 checkpoints in ${dir} is usable`),
    );
    expect(await readdir(dir)).toEqual(['step-000000010.ckpt']);
  });

  it('names the step of the newest checkpoint file, ignoring temporary files; none without one', async () => {
    expect(await newestCheckpointStep(join(dir, 'missing'))).toBeUndefined();
    expect(await newestCheckpointStep(dir)).toBeUndefined();
    for (const steps of [9, 10]) await writeCheckpoint(dir, advancedState(steps).checkpoint(), 3);
    await writeFile(join(dir, 'step-000000011.ckpt.999.tmp'), 'partial');
    expect(await newestCheckpointStep(dir)).toBe(10);
  });

  it('leaves the previous checkpoint intact when a write dies half-way (a partial temporary file)', async () => {
    await writeCheckpoint(dir, advancedState(5).checkpoint(), 3);
    const full = encodeCheckpoint(advancedState(6).checkpoint());
    // What a crash mid-write leaves behind: the temporary file, never renamed into place.
    await writeFile(join(dir, 'step-000000006.ckpt.999.tmp'), full.subarray(0, full.length / 2));
    const { checkpoint } = await loadLatestCheckpoint(dir, warn);
    expect(checkpoint.step).toBe(5);
    expect(decodeCheckpoint(await readFile(join(dir, 'step-000000005.ckpt')), 'x').step).toBe(5);
  });

  it('on a full disk fails with WRITE_FAILED naming the file and its directory, leaving no temporary file and the previous checkpoint intact', async () => {
    await writeCheckpoint(dir, advancedState(5).checkpoint(), 3);
    const path = join(dir, 'step-000000006.ckpt');
    await onFullDisk(path);
    const failure = await writeCheckpoint(dir, advancedState(6).checkpoint(), 3).catch((error) => error);
    // The temporary file went with the failed write: a full disk is no fuller than before.
    expect(await readdir(dir)).toEqual(['step-000000005.ckpt']);
    expect(failure).toEqual(
      callosumError('WRITE_FAILED', `cannot write ${path}: no space left on the device holding ${dir}`),
    );
    expect((await loadLatestCheckpoint(dir, warn)).checkpoint.step).toBe(5);
  });

  it('says clearly when there is no valid checkpoint', async () => {
    await expect(loadLatestCheckpoint(dir, warn)).rejects.toThrow(/no checkpoint in/);
    await writeFile(join(dir, 'step-000000001.ckpt'), 'garbage');
    await expect(loadLatestCheckpoint(dir, warn)).rejects.toThrow(
      /none of the 1 checkpoints in .* is usable: step-000000001\.ckpt \(not a Callosum checkpoint \(bad magic\)\)$/,
    );
  });

  it('refuses to continue the run on training data of another size, and trusts a checkpoint from before it recorded the size', () => {
    const checkpoint = decodeCheckpoint(encodeCheckpoint(advancedState(3).checkpoint()), 'mem');
    expect(checkpoint.datasetSize).toBe(1000);
    expect(() => TrainingState.restore(checkpoint, 750)).toThrow(
      /the checkpoint's run trains on 1000 samples, and this one has 750: its training data are not the run's/,
    );
    const { datasetSize: _, ...older } = checkpoint;
    expect(TrainingState.restore(decodeCheckpoint(encodeCheckpoint(older), 'old'), 750).step).toBe(3);
  });

  it('refuses a checkpoint whose step lies outside the run', () => {
    const checkpoint: Checkpoint = { ...advancedState(1).checkpoint(), step: 10_000 };
    expect(() => TrainingState.restore(checkpoint, 1000)).toThrow(/step 10000 is outside this run/);
  });
});
