import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CallosumError, ErrorCodes } from '../errors.js';
import { writeFileAtomically } from '../io/atomic-file.js';
import type { OptimizerState } from '../optim/optimizer.js';
import { integerOption, parseOptions } from '../options/schema.js';
import { type TrainingConfig, trainingConfigSchema } from './config.js';

/**
 * A checkpoint is everything the coordinator's state consists of: config (model, seed, batch, schedule,
 * augmentation), step, weights and optimizer state. The sampler position and every batch follow from
 * (config, step), so a resumed run continues with exactly the batches the interrupted one would have.
 *
 * File layout: 8-byte magic, uint32 little-endian header length, a JSON header, then the body: the
 * weights and each optimizer slot as little-endian float32, in the order the header lists them. The
 * header carries the body's SHA-256, so truncation or corruption anywhere is detected. The optimizer
 * moves only the trainable weights (a prefix of the vector, see ParameterLayout), so its slots may be
 * shorter than the weights: the header then gives their length as `slotLength` (absent: as long as the
 * weights, which is all a checkpoint of a fully trainable model says, as before the field existed).
 */
export const CHECKPOINT_FORMAT_VERSION = 1;

export interface Checkpoint {
  readonly config: TrainingConfig;
  /**
   * The training samples the run's epochs go over, which with the config fix its batches and schedule;
   * absent from checkpoints written before it was recorded.
   */
  readonly datasetSize?: number | undefined;
  readonly step: number;
  readonly weights: Float32Array;
  readonly optimizer: OptimizerState;
}

const MAGIC = Buffer.from('CLSMCKPT', 'latin1');
const FILE_PATTERN = /^step-(\d{9})\.ckpt$/;

/** The JSON header: read back through this schema, so a damaged or foreign header is named, not trusted. */
const headerSchema = z.object({
  formatVersion: z.literal(CHECKPOINT_FORMAT_VERSION, {
    error: (issue) =>
      `must be ${CHECKPOINT_FORMAT_VERSION} (the version this build reads), got ${String(issue.input)}`,
  }),
  createdAt: z.string(),
  config: trainingConfigSchema,
  datasetSize: integerOption(1).optional(),
  step: integerOption(0),
  optimizer: z.object({
    name: z.string().min(1),
    step: integerOption(0),
    slots: z.array(z.string().min(1)),
  }),
  parameterCount: integerOption(0),
  /** Elements per optimizer slot, when fewer than `parameterCount` (the optimizer's trainable prefix). */
  slotLength: integerOption(0).optional(),
  bodySha256: z.string().regex(/^[0-9a-f]{64}$/),
});

type Header = z.infer<typeof headerSchema>;

export function encodeCheckpoint(checkpoint: Checkpoint): Buffer {
  const slotNames = Object.keys(checkpoint.optimizer.slots).sort();
  const arrays = [
    checkpoint.weights,
    ...slotNames.map((slot) => checkpoint.optimizer.slots[slot] as Float32Array),
  ];
  const slotLength = checkpoint.optimizer.slots[slotNames[0] ?? '']?.length ?? checkpoint.weights.length;
  for (const slot of slotNames) {
    const length = (checkpoint.optimizer.slots[slot] as Float32Array).length;
    if (length !== slotLength || length > checkpoint.weights.length) {
      throw new CallosumError(
        ErrorCodes.SHAPE_MISMATCH,
        `checkpoint: optimizer slot "${slot}" has ${length} elements, the weights ${checkpoint.weights.length} and slot "${slotNames[0]}" ${slotLength}`,
      );
    }
  }
  const body = Buffer.concat(
    arrays.map((array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength)),
  );
  const header: Header = {
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    createdAt: new Date().toISOString(),
    config: checkpoint.config,
    ...(checkpoint.datasetSize === undefined ? {} : { datasetSize: checkpoint.datasetSize }),
    step: checkpoint.step,
    optimizer: { name: checkpoint.optimizer.name, step: checkpoint.optimizer.step, slots: slotNames },
    parameterCount: checkpoint.weights.length,
    ...(slotLength === checkpoint.weights.length ? {} : { slotLength }),
    bodySha256: createHash('sha256').update(body).digest('hex'),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(headerBytes.length);
  return Buffer.concat([MAGIC, length, headerBytes, body]);
}

/** Decodes and verifies a checkpoint; `source` names it in errors. */
export function decodeCheckpoint(bytes: Buffer, source: string): Checkpoint {
  const invalid = (problem: string) =>
    new CallosumError(ErrorCodes.ARTIFACT_INVALID, `${source}: ${problem}`);
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw invalid('not a Callosum checkpoint (bad magic)');
  }
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const bodyStart = MAGIC.length + 4 + headerLength;
  if (bodyStart > bytes.length) throw invalid('truncated header');
  let json: unknown;
  try {
    json = JSON.parse(bytes.subarray(MAGIC.length + 4, bodyStart).toString('utf8'));
  } catch {
    throw invalid('header is not valid JSON');
  }
  const header = parseOptions(headerSchema, json, `${source}: header`, ErrorCodes.ARTIFACT_INVALID);
  const body = bytes.subarray(bodyStart);
  const slotLength = header.slotLength ?? header.parameterCount;
  if (slotLength > header.parameterCount) {
    throw invalid(`header: slotLength ${slotLength} is more than the ${header.parameterCount} parameters`);
  }
  const lengths = [header.parameterCount, ...header.optimizer.slots.map(() => slotLength)];
  const expectedBytes = lengths.reduce((total, length) => total + length * 4, 0);
  if (body.length !== expectedBytes)
    throw invalid(`body has ${body.length} bytes, header describes ${expectedBytes}`);
  if (createHash('sha256').update(body).digest('hex') !== header.bodySha256)
    throw invalid('checksum mismatch');
  // Copy into fresh, aligned arrays: the body may start at any offset.
  let start = 0;
  const arrays = lengths.map((length) => {
    const array = new Float32Array(new Uint8Array(body.subarray(start, start + length * 4)).buffer);
    start += length * 4;
    return array;
  });
  const [weights, ...slotArrays] = arrays as [Float32Array, ...Float32Array[]];
  const slots = Object.fromEntries(
    header.optimizer.slots.map((slot, index) => [slot, slotArrays[index] as Float32Array]),
  );
  return {
    config: header.config,
    ...(header.datasetSize === undefined ? {} : { datasetSize: header.datasetSize }),
    step: header.step,
    weights,
    optimizer: { name: header.optimizer.name, step: header.optimizer.step, slots },
  };
}

/**
 * Writes a checkpoint atomically (temporary file, fsync, rename, fsync of the directory), so a crash
 * at any moment leaves either the new checkpoint or none, and the previous ones intact; a write that
 * fails (a full disk) removes its temporary file and rejects with WRITE_FAILED naming the file. Keeps
 * the newest `keep` checkpoints. Returns the file's path.
 */
export async function writeCheckpoint(dir: string, checkpoint: Checkpoint, keep: number): Promise<string> {
  const name = `step-${String(checkpoint.step).padStart(9, '0')}.ckpt`;
  const path = join(dir, name);
  await writeFileAtomically(path, encodeCheckpoint(checkpoint), { durable: true });
  const existing = await checkpointFiles(dir);
  await Promise.all(existing.slice(keep).map((old) => rm(join(dir, old), { force: true })));
  return path;
}

/** Whether `name` is a checkpoint file's name (`step-NNNNNNNNN.ckpt`). */
export function isCheckpointFileName(name: string): boolean {
  return FILE_PATTERN.test(name);
}

/** Whether `dir` holds any checkpoint file, intact or not (false when it does not exist). */
export async function holdsCheckpoints(dir: string): Promise<boolean> {
  return (await checkpointFiles(dir)).length > 0;
}

/**
 * The step of the newest checkpoint file in `dir` (by its name, intact or not), where a resume would
 * continue unless that file turns out damaged; undefined when it holds none.
 */
export async function newestCheckpointStep(dir: string): Promise<number | undefined> {
  const [newest] = await checkpointFiles(dir);
  return newest === undefined ? undefined : Number(FILE_PATTERN.exec(newest)?.[1]);
}

/** Checkpoint file names in `dir`, newest first. */
async function checkpointFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names.filter(isCheckpointFileName).sort().reverse();
}

/**
 * The newest checkpoint in `dir` that reads back intact. A corrupt or truncated newer one is skipped
 * with a warning; with none valid (or none at all), a clear error.
 */
export async function loadLatestCheckpoint(
  dir: string,
  warn: (line: string) => void,
): Promise<{ checkpoint: Checkpoint; path: string }> {
  const names = await checkpointFiles(dir);
  for (const name of names) {
    const path = join(dir, name);
    try {
      return { checkpoint: decodeCheckpoint(await readFile(path), path), path };
    } catch (error) {
      warn(`checkpoint ${path} is unusable (${(error as Error).message}); trying an older one`);
    }
  }
  throw new CallosumError(
    ErrorCodes.ARTIFACT_INVALID,
    names.length === 0
      ? `no checkpoint in ${dir}`
      : `none of the ${names.length} checkpoints in ${dir} is intact`,
  );
}
