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
    const bytes = encodeCheckpoint(advancedState(2).checkpoint());
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 1), 'a.ckpt')).toThrow(
      /a\.ckpt: body has/,
    );
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 3] = (flipped[flipped.length - 3] as number) ^ 0x40;
    expect(() => decodeCheckpoint(flipped, 'b.ckpt')).toThrow(/b\.ckpt: checksum mismatch/);
    expect(() => decodeCheckpoint(Buffer.from('hello world, not a checkpoint'), 'c.ckpt')).toThrow(
      /bad magic/,
    );
  });

  it('reads the header through its schema: a bad or contradictory field is named, never trusted', () => {
    const checkpoint = advancedState(1).checkpoint();
    const contradictory = { ...checkpoint, config: { ...checkpoint.config, microBatchSize: 11 } };
    expect(() => decodeCheckpoint(encodeCheckpoint(contradictory), 'd.ckpt')).toThrow(
      'd.ckpt: header: config.microBatchSize (at most the global batch size) must be an integer in 1..10, got 11',
    );
    const bytes = encodeCheckpoint(checkpoint);
    const edited = (edit: (header: Record<string, unknown>) => void): Buffer => {
      const length = bytes.readUInt32LE(8);
      const header = JSON.parse(bytes.subarray(12, 12 + length).toString('utf8'));
      edit(header);
      const json = Buffer.from(JSON.stringify(header), 'utf8');
      const prefix = Buffer.alloc(12);
      bytes.copy(prefix, 0, 0, 8);
      prefix.writeUInt32LE(json.length, 8);
      return Buffer.concat([prefix, json, bytes.subarray(12 + length)]);
    };
    expect(
      decodeCheckpoint(
        edited(() => {}),
        'e.ckpt',
      ).step,
    ).toBe(1);
    // A fully trainable model's optimizer slots are as long as its weights: the header says nothing more.
    edited((header) => expect(header.slotLength).toBeUndefined());
    const cases: [(header: Record<string, unknown>) => void, RegExp][] = [
      [(header) => (header.formatVersion = 2), /e\.ckpt: header: formatVersion must be 1 .*got 2/],
      [(header) => delete header.step, /e\.ckpt: header: step must be an integer >= 0, got undefined/],
      [(header) => (header.parameterCount = -50), /e\.ckpt: header: parameterCount must be an integer >= 0/],
      [(header) => ((header.config as Record<string, unknown>).epochs = 0), /header: config\.epochs must be/],
      [(header) => delete (header.config as Record<string, unknown>).batchSize, /header: config\.batchSize/],
      [(header) => (header.slotLength = 51), /e\.ckpt: header: slotLength 51 is more than the 50 parameters/],
      [(header) => (header.slotLength = 49), /e\.ckpt: body has 600 bytes, header describes 592/],
    ];
    for (const [edit, message] of cases) {
      expect(() => decodeCheckpoint(edited(edit), 'e.ckpt')).toThrow(message);
      expect(() => decodeCheckpoint(edited(edit), 'e.ckpt')).toThrow(
        expect.objectContaining({ code: 'ARTIFACT_INVALID' }),
      );
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
      /none of the 1 checkpoints in .* is intact/,
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
