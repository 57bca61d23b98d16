import { createHash } from 'node:crypto';
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { CallosumError, ErrorCodes } from '../errors.js';
import { writeFileAtomically } from '../io/atomic-file.js';
import type { OptimizerState } from '../optim/optimizer.js';
import { integerOption, parseOptions } from '../options/schema.js';
import { type TrainingConfig, trainingConfigSchema } from './config.js';
import { runSteps } from './training-state.js';

/**
 * A checkpoint is everything the coordinator's state consists of: config (model, seed, batch, schedule,
 * augmentation), step, weights and optimizer state. The sampler position and every batch follow from
 * (config, step), so a resumed run continues with exactly the batches the interrupted one would have.
 *
 * File layout: 8-byte magic, uint32 little-endian header length, a JSON header, then the body: the
 * weights and each optimizer slot as little-endian float32, in the order the header lists them. The
 * optimizer moves only the trainable weights (a prefix of the vector, see ParameterLayout), so its slots
 * may be shorter than the weights: the header then gives their length as `slotLength` (absent: as long
 * as the weights, which is all a checkpoint of a fully trainable model says, as before the field existed).
 *
 * The header's `formatVersion` says how the file is checked:
 * - 2 (written since the header is checked too): the body is followed by a 32-byte SHA-256 of every
 *   byte before it (magic, length, header, body), so corruption anywhere — a header's step, seed or
 *   optimizer step count included — is detected. The header has no `bodySha256`, so a version digit
 *   damaged into 1 fails the version-1 schema instead of skipping the check.
 * - 1 (written before): the header carries `bodySha256`, a SHA-256 of the body only; a damaged header is
 *   caught only where its schema, or a check of its content (its step against the file's name,
 *   loadLatestCheckpoint), refuses it. Still read, so that runs checkpointed by earlier versions resume.
 *
 * Format 2 is read by this build and later ones only: a Callosum from before it refuses a format-2 file
 * (its formatVersion is not 1), so a run checkpointed by this build cannot be resumed after a downgrade.
 *
 * Pruning (writeCheckpoint) keeps the newest `keep` files by name. A resume that skips unusable newer
 * files (damaged, a header step other than the name's, a step past the run's end, another run's config)
 * renames each aside as `<name>.unusable` (loadLatestCheckpoint's `setAside`), which no longer matches
 * the checkpoint pattern: left in place, they would count among the `keep` newest, and the resumed
 * run's own new checkpoints could be pruned as soon as written.
 *
 * Ring replicas travel as checkpoints too (the `replica` message, `replica-state`): they are encoded
 * as version 1 (REPLICA_FORMAT_VERSION), which every worker and coordinator of protocol 1.x reads; the
 * connection carrying them is checked already.
 */
export const CHECKPOINT_FORMAT_VERSION = 2;

/** The checkpoint format of ring replicas on the wire: the one every protocol 1.x peer reads. */
export const REPLICA_FORMAT_VERSION = 1;

/** The checkpoint format versions this build reads. */
const READABLE_VERSIONS = [1, 2] as const;
type FormatVersion = (typeof READABLE_VERSIONS)[number];

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

/** A version-2 checkpoint ends with a SHA-256 of every byte before it. */
const DIGEST_BYTES = 32;

/**
 * A header whose formatVersion is not 2 is read as version 1's (decodeCheckpoint): anything else there
 * is a version this build does not read, which the message says with every version it does read.
 */
const formatVersion1Schema = z.literal(1, {
  error: (issue) =>
    `must be ${READABLE_VERSIONS.join(' or ')} (the versions this build reads), got ${String(issue.input)}`,
});

/** The JSON header: read back through this schema, so a damaged or foreign header is named, not trusted. */
const headerFields = {
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
};
const bodySha256 = z.string().regex(/^[0-9a-f]{64}$/);
/** Version 1: the header carries the body's SHA-256. */
const headerSchemaV1 = z.object({ formatVersion: formatVersion1Schema, ...headerFields, bodySha256 });
/** Version 2: the file's SHA-256 follows the body; a `bodySha256` here is a damaged version-1 header. */
const headerSchemaV2 = z.object({
  formatVersion: z.literal(2),
  ...headerFields,
  bodySha256: z
    .never({ error: 'must be absent in format version 2 (its digest follows the body)' })
    .optional(),
});

type Header = Omit<z.infer<typeof headerSchemaV1>, 'formatVersion' | 'bodySha256'> & {
  formatVersion: FormatVersion;
  bodySha256?: string | undefined;
};

/**
 * The bytes of a checkpoint, in format version `formatVersion` (the newest by default; ring replicas
 * use REPLICA_FORMAT_VERSION).
 */
export function encodeCheckpoint(
  checkpoint: Checkpoint,
  formatVersion: FormatVersion = CHECKPOINT_FORMAT_VERSION,
): Buffer {
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
    formatVersion,
    createdAt: new Date().toISOString(),
    config: checkpoint.config,
    ...(checkpoint.datasetSize === undefined ? {} : { datasetSize: checkpoint.datasetSize }),
    step: checkpoint.step,
    optimizer: { name: checkpoint.optimizer.name, step: checkpoint.optimizer.step, slots: slotNames },
    parameterCount: checkpoint.weights.length,
    ...(slotLength === checkpoint.weights.length ? {} : { slotLength }),
    ...(formatVersion === 1 ? { bodySha256: createHash('sha256').update(body).digest('hex') } : {}),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(headerBytes.length);
  const bytes = Buffer.concat([MAGIC, length, headerBytes, body]);
  if (formatVersion === 1) return bytes;
  return Buffer.concat([bytes, createHash('sha256').update(bytes).digest()]);
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
  // Version 2: the digest of everything before it is checked first, so that any damaged byte, in the
  // header too, is called what it is rather than trusted or read as whatever field it changed.
  const version2 = (json as { formatVersion?: unknown } | null)?.formatVersion === 2;
  const end = version2 ? bytes.length - DIGEST_BYTES : bytes.length;
  if (version2) {
    if (end < bodyStart) throw invalid('truncated (no room for its SHA-256 after the header)');
    const digest = createHash('sha256').update(bytes.subarray(0, end)).digest();
    if (!digest.equals(bytes.subarray(end))) throw invalid('checksum mismatch');
  }
  const header: Header = parseOptions(
    version2 ? headerSchemaV2 : headerSchemaV1,
    json,
    `${source}: header`,
    ErrorCodes.ARTIFACT_INVALID,
  );
  const body = bytes.subarray(bodyStart, end);
  const slotLength = header.slotLength ?? header.parameterCount;
  if (slotLength > header.parameterCount) {
    throw invalid(`header: slotLength ${slotLength} is more than the ${header.parameterCount} parameters`);
  }
  const lengths = [header.parameterCount, ...header.optimizer.slots.map(() => slotLength)];
  const expectedBytes = lengths.reduce((total, length) => total + length * 4, 0);
  if (body.length !== expectedBytes)
    throw invalid(`body has ${body.length} bytes, header describes ${expectedBytes}`);
  if (!version2 && createHash('sha256').update(body).digest('hex') !== header.bodySha256)
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
 * the newest `keep` checkpoints by name (a resume sets aside the unusable ones it skipped, so that they
 * do not count: loadLatestCheckpoint). Returns the file's path.
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

/** The step a checkpoint file's name gives (`step-000000100.ckpt`: 100). */
function stepOfName(name: string): number {
  return Number(FILE_PATTERN.exec(name)?.[1]);
}

/**
 * Why `checkpoint`, read from the file `name`, cannot be continued from though it decoded: a step other
 * than its name's (a damaged header), or one past the end of its own run (its config and training
 * set's size fix the run's length; a checkpoint from before the size was recorded is checked once the
 * data are loaded, TrainingState.restore). Undefined when it can.
 */
function checkpointProblem(checkpoint: Checkpoint, name: string): string | undefined {
  const named = stepOfName(name);
  if (checkpoint.step !== named) {
    return `its header says step ${checkpoint.step}, its name step ${named}`;
  }
  if (checkpoint.datasetSize !== undefined) {
    const steps = runSteps(checkpoint.config, checkpoint.datasetSize);
    if (checkpoint.step > steps) {
      return `its step ${checkpoint.step} is past the end of its run (${steps} steps)`;
    }
  }
  return undefined;
}

/** What a checkpoint file skipped by a resume is renamed to: no longer a checkpoint's name. */
export const SET_ASIDE_SUFFIX = '.unusable';

/**
 * The newest checkpoint in `dir` that is usable: it reads back intact, its header's step is its name's,
 * its step lies within its run, and `check` (what the caller knows of the run: a run directory's marker
 * names its config) accepts it by returning without throwing. An unusable newer one is skipped with a
 * warning saying why, and the next older one tried; with none usable (or none at all), an
 * ARTIFACT_INVALID error naming each file and why, every file left as it was.
 *
 * With `setAside` (a resume, which writes checkpoints into `dir` from then on), each file skipped for
 * an older usable one is renamed `<name>.unusable`, which is no checkpoint's name, and its warning says
 * so: left in place, the skipped files, newer by name than any the resumed run writes for a while,
 * would count among the newest `keep` that writeCheckpoint keeps, and the run's own new checkpoints
 * could be pruned as soon as written. The file is kept under that name, for a person to look at; one
 * that cannot be renamed is said, and stays.
 */
export async function loadLatestCheckpoint(
  dir: string,
  warn: (line: string) => void,
  check: (checkpoint: Checkpoint, path: string) => void = () => {},
  { setAside = false }: { readonly setAside?: boolean } = {},
): Promise<{ checkpoint: Checkpoint; path: string }> {
  const names = await checkpointFiles(dir);
  const refused: { name: string; path: string; reason: string }[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let reason: string;
    try {
      const checkpoint = decodeCheckpoint(await readFile(path), path);
      const problem = checkpointProblem(checkpoint, name);
      if (problem === undefined) {
        check(checkpoint, path);
        for (const skipped of refused) {
          warn(
            `${unusable(skipped)}; ${setAside ? await setAsideFile(skipped.path) : ''}trying an older one`,
          );
        }
        return { checkpoint, path };
      }
      reason = problem;
    } catch (error) {
      const message = (error as Error).message;
      // decodeCheckpoint's errors start with the path, which the warning names already.
      reason = message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message;
    }
    refused.push({ name, path, reason });
  }
  for (const [index, skipped] of refused.entries()) {
    warn(
      `${unusable(skipped)}; ${index + 1 < refused.length ? 'trying an older one' : 'there is no older one'}`,
    );
  }
  throw new CallosumError(
    ErrorCodes.ARTIFACT_INVALID,
    names.length === 0
      ? `no checkpoint in ${dir}`
      : `none of the ${names.length} checkpoints in ${dir} is usable: ${refused.map(({ name, reason }) => `${name} (${reason})`).join('; ')}`,
  );
}

function unusable({ path, reason }: { path: string; reason: string }): string {
  return `checkpoint ${path} is unusable (${reason})`;
}

/** Renames a skipped checkpoint file aside; says what became of it, for its warning ("…; "). */
async function setAsideFile(path: string): Promise<string> {
  const aside = `${path}${SET_ASIDE_SUFFIX}`;
  try {
    await rename(path, aside);
    return `set aside as ${basename(aside)}, neither tried again nor counted among the checkpoints kept; `;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return `it could not be set aside as ${basename(aside)} (${code}) and counts among the checkpoints kept; `;
  }
}
