import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import {
  CallosumError,
  type Checkpoint,
  ErrorCodes,
  holdsCheckpoints,
  isCheckpointFileName,
  loadLatestCheckpoint,
  MODEL_FILES,
  processIdentity,
  processRuns,
  removeStaleTemporaryFiles,
  systemErrorCode,
  type TrainingConfig,
  writeFailure,
  writeFileAtomically,
} from '@callosum/core';
import type { CoordinatorOptions, RunSummary } from '../options.js';
import { type StoredRunSettings, storedRunSettingsSchema } from '../settings.js';

/** The files a run keeps in its directory. Another run's copy of any of them means the directory is taken. */
export const RunFiles = {
  /** Who the directory belongs to: run id, the hash of its training config, and what it trains. */
  MARKER: 'callosum-run.json',
  /** The finished run's summary; its presence means the run is complete. */
  SUMMARY: 'summary.json',
  METRICS: 'metrics.jsonl',
  CHECKPOINTS: 'checkpoints',
  MODEL: 'model',
  /** What `callosum report` writes: the dashboard's views of the run, in one HTML file. */
  REPORT: 'report.html',
} as const;

const RUN_FILE_NAMES: readonly string[] = Object.values(RunFiles);
/** `--overwrite` moves a previous run's files into `<outDir>/replaced-<time>/`: a run directory too. */
export const REPLACED_RUN_PREFIX = 'replaced-';
const MARKER_FORMAT = 1;

interface RunMarker {
  readonly format: number;
  readonly runId: string;
  readonly createdAt: string;
  readonly configSha256: string;
  /** Added later: markers written before it have none, and their runs take the defaults. */
  readonly settings?: StoredRunSettings;
  /**
   * The model the config names: `task:<name>` or a built-in model's name, so that a resume of the
   * finished run, which reads no checkpoint, can check its task too. Added later, as `settings`.
   */
  readonly model?: string;
  /**
   * The training data the run trains on: their count and sampleSetDigest. Added later, as `settings`:
   * a run from before it records them when it is resumed.
   */
  readonly trainingData?: { readonly samples: number; readonly sha256: string };
}

export interface RunDirectoryOptions {
  readonly outDir: string;
  /** Continue the run in outDir; it must exist. */
  readonly resume?: boolean | undefined;
  /** A new run in a directory holding another run: move that run's files aside instead of refusing. */
  readonly overwrite?: boolean | undefined;
  readonly log: (line: string) => void;
}

/**
 * A run directory belongs to one run. A new run refuses a directory that holds another run's files (it
 * would overwrite its model, append to its metrics and resume from its checkpoints), and records who it
 * is in a marker file; a resumed run checks that its checkpoint is the marker's run.
 */
export class RunDirectory {
  private constructor(
    readonly path: string,
    private marker: RunMarker,
    /** False for a run directory from before markers existed: it gets one when resumed. */
    private readonly markerStored: boolean,
    /** What this process created for a new run, so a run that never started leaves nothing behind. */
    private created: Created = NOTHING_CREATED,
  ) {}

  /** The run's identity, the same for every coordinator that continues it. */
  get runId(): string {
    return this.marker.runId;
  }

  get checkpointDir(): string {
    return join(this.path, RunFiles.CHECKPOINTS);
  }

  get metricsFile(): string {
    return join(this.path, RunFiles.METRICS);
  }

  /** The settings the run stored (none for a new run, or one from before they were stored). */
  get storedSettings(): StoredRunSettings {
    return this.marker.settings ?? {};
  }

  /**
   * The settings the run in `path` stored, for resolving a resumed run's settings before its directory
   * is opened; none when it has no readable marker (opening it then says why).
   */
  static async settingsStoredIn(path: string): Promise<StoredRunSettings> {
    const marker = await readMarker(path).catch(() => undefined);
    return marker?.settings ?? {};
  }

  static async open(options: RunDirectoryOptions): Promise<RunDirectory> {
    // First: a directory another coordinator is using is refused as such, before anything is moved.
    let locked = await takeLock(options.outDir, options.log);
    let directory: RunDirectory;
    try {
      if (options.resume === true) {
        directory = await RunDirectory.reopen(options.outDir);
      } else {
        const created = await createDirectories(options.outDir);
        // A directory made just now is locked before its files are looked at: a run starting in it at
        // the same moment is then refused as a coordinator using it, not for the files it has begun.
        if (!locked) locked = await takeLock(options.outDir, options.log);
        directory = await RunDirectory.claim(options, created);
      }
    } catch (error) {
      if (locked) await releaseLock(options.outDir);
      throw error;
    }
    if (!locked) await takeLock(options.outDir, options.log);
    await directory.removeStaleTemporaryFiles(options.log);
    return directory;
  }

  /** Lets another coordinator use the directory: once the run has ended (or never started). */
  releaseLock(): Promise<void> {
    return releaseLock(this.path);
  }

  /**
   * Removes the temporary files of atomic writes (`<file>.<pid>.tmp`) an earlier process of this run left
   * in the directories a run writes, before this one writes there: a coordinator killed while it wrote
   * a checkpoint or the model (`kill -9`, a power loss) leaves one as large as the model, and a full disk
   * stays full with them. Only the files a run writes are matched (the run files, a checkpoint, the
   * model's two files; not the lock's, see lockTemporary), and only those whose writer is gone (core's removeStaleTemporaryFiles: its pid
   * is no running process, or this process's, which has written nothing here yet), so a `callosum
   * report` writing report.html at this moment keeps its file.
   */
  private async removeStaleTemporaryFiles(log: (line: string) => void): Promise<void> {
    const removed = [
      ...(await removeStaleTemporaryFiles(this.path, (name) => RUN_FILE_NAMES.includes(name))),
      ...(await removeStaleTemporaryFiles(this.checkpointDir, isCheckpointFileName)),
      ...(await removeStaleTemporaryFiles(join(this.path, RunFiles.MODEL), (name) =>
        MODEL_FILES.includes(name),
      )),
    ];
    if (removed.length > 0) {
      log(
        `coordinator: removed ${removed.length === 1 ? 'a temporary file' : `${removed.length} temporary files`} ` +
          `left by an interrupted write: ${removed.join(', ')}`,
      );
    }
  }

  /** The directory of a run to continue: it must exist; it is never created. */
  private static async reopen(path: string): Promise<RunDirectory> {
    await requireDirectory(path, 'to resume');
    switch (await runDirectoryState(path)) {
      case 'finished':
        throw new CallosumError(
          ErrorCodes.RUN_ENDED,
          `the run in ${path} is already complete (its summary: ${join(path, RunFiles.SUMMARY)}); to train it ` +
            'again, move it aside with --overwrite (overwrite: true from a program)',
        );
      case 'empty':
        throw new CallosumError(
          ErrorCodes.ARTIFACT_INVALID,
          `no run to resume in ${path}: it holds no run files`,
        );
      case 'unresumable':
        throw new CallosumError(
          ErrorCodes.ARTIFACT_INVALID,
          `nothing to resume in ${path}: it holds no checkpoint (its run stopped before the first one); ` +
            `start it again with --out ${path} --overwrite, or in a new --out directory`,
        );
      case 'resumable':
        break;
    }
    const marker = await readMarker(path);
    return new RunDirectory(path, marker ?? newMarker(), marker !== undefined);
  }

  /** A new run's directory, `created` (its missing parents too, outermost first) or already there. */
  private static async claim(
    options: RunDirectoryOptions,
    created: readonly string[],
  ): Promise<RunDirectory> {
    const path = options.outDir;
    const taken = await runFilesIn(path);
    let replaced: { aside: string; names: readonly string[] } | undefined;
    if (taken.length > 0) {
      if (options.overwrite !== true) {
        throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, await occupiedRefusal(path, taken));
      }
      const aside = join(path, `${REPLACED_RUN_PREFIX}${new Date().toISOString().replace(/[:.]/g, '-')}`);
      try {
        await mkdir(aside);
        for (const name of taken) await rename(join(path, name), join(aside, name));
      } catch (error) {
        throw runDirectoryError(
          path,
          'cannot move the previous run aside in',
          error as NodeJS.ErrnoException,
        );
      }
      options.log(`coordinator: moved the previous run's files in ${path} to ${aside}`);
      replaced = { aside, names: taken };
    }
    const checkpoints = join(path, RunFiles.CHECKPOINTS);
    await mkdir(checkpoints).catch((error: NodeJS.ErrnoException) => {
      // Not there a moment ago (it is a run file): a run starting in the directory too made it.
      if (error.code === 'EEXIST') throw startingAlongside(path, checkpoints);
      throw runDirectoryError(path, 'cannot write to', error);
    });
    return new RunDirectory(path, newMarker(), false, {
      directories: created,
      files: [checkpoints, join(path, RunFiles.MARKER), join(path, RunFiles.METRICS)],
      replaced,
    });
  }

  /**
   * Refuses (throws, for loadLatestCheckpoint to try an older one) a checkpoint whose config is not the
   * one the run's marker records: it belongs to another run. A run without a marker accepts any.
   */
  checkCheckpoint(checkpoint: Checkpoint): void {
    if (this.markerStored && this.marker.configSha256 !== configHash(checkpoint.config)) {
      throw new CallosumError(
        ErrorCodes.ARTIFACT_INVALID,
        `its training config is not that of the run recorded in ${join(this.path, RunFiles.MARKER)}: it belongs to another run`,
      );
    }
  }

  /**
   * A resumed run whose directory has checkpoints but no marker (`callosum-run.json`): the settings it
   * stored there (checkpoint interval, topology, wire dtype, and for a ring whether its workers reduce
   * over TLS) are unknown. A checkpoint that records the training set's size (every checkpoint since
   * 2026-12-07, format 2 included) was written by a version that writes the marker first, so the marker
   * was deleted or lost: refused, unless `options` give every stored setting (peer TLS too when the
   * topology given is ring: `--peer-tls yes` or `no`), which then guesses nothing; a ring run that
   * reduced over TLS would otherwise continue over plaintext peer links. An older checkpoint's run may
   * be from before markers existed, and continues with `settings` (the defaults where `options` give
   * none), said in the log.
   */
  requireMarker(
    checkpoint: Checkpoint,
    options: Pick<CoordinatorOptions, 'checkpointEverySteps' | 'topology' | 'wireDtype' | 'peerTls'>,
    settings: Required<StoredRunSettings>,
    log: (line: string) => void,
  ): void {
    if (this.markerStored) return;
    const marker = join(this.path, RunFiles.MARKER);
    const used =
      `checkpoint every ${settings.checkpointEverySteps} steps, topology ${settings.topology}` +
      `${settings.topology === 'ring' ? (settings.peerTls ? ' with peer TLS' : ' without peer TLS') : ''}, wire dtype ${settings.wireDtype}`;
    const allGiven =
      options.checkpointEverySteps !== undefined &&
      options.topology !== undefined &&
      options.wireDtype !== undefined &&
      (options.topology !== 'ring' || options.peerTls !== undefined);
    if (checkpoint.datasetSize !== undefined && !allGiven) {
      throw new CallosumError(
        ErrorCodes.ARTIFACT_INVALID,
        `${this.path} holds checkpoints but no ${RunFiles.MARKER}, which the Callosum that wrote them writes ` +
          "first: it was deleted or lost, and with it the run's id and stored settings (checkpoint interval, " +
          `topology, wire dtype, peer TLS). Put ${marker} back, or resume with all three given (--checkpoint-every, ` +
          '--topology, --wire-dtype; checkpointEverySteps, topology, wireDtype from a program), and with ' +
          '--topology ring whether its workers reduce over TLS (--peer-tls yes or --peer-tls no, of callosum ' +
          'coordinator; peerTls), to continue with those',
      );
    }
    log(
      `coordinator: warning: ${this.path} holds checkpoints but no ${RunFiles.MARKER}` +
        (checkpoint.datasetSize === undefined
          ? ' (a run from before run markers, or its marker was deleted)'
          : ' (it was deleted or lost)') +
        `: the run continues under a new run id with ${used}` +
        (allGiven
          ? ' (as given)'
          : ' (the defaults, where --checkpoint-every, --topology, --wire-dtype give none)') +
        `, and gets a new ${RunFiles.MARKER}`,
    );
  }

  /**
   * Binds the directory to the run's config and stores the run's `settings`: a new run writes its
   * marker (the first write, so an unwritable directory fails here, before training); a resumed run's
   * checkpoint must carry the config its marker names, or it belongs to another run, and its marker is
   * rewritten only when its settings change (or it does not name the model yet).
   */
  async adopt(
    config: TrainingConfig,
    checkpointPath: string | undefined,
    settings: StoredRunSettings,
  ): Promise<void> {
    const configSha256 = configHash(config);
    if (this.markerStored) {
      if (this.marker.configSha256 !== configSha256) {
        throw new CallosumError(
          ErrorCodes.ARTIFACT_INVALID,
          `${checkpointPath ?? 'the checkpoint'} is not from the run recorded in ${join(this.path, RunFiles.MARKER)} ` +
            '(its training config differs); it belongs to another run',
        );
      }
      const sameSettings = JSON.stringify(this.marker.settings ?? {}) === JSON.stringify(settings);
      if (sameSettings && this.marker.model === config.model.name) return;
    }
    // A new run, a run from before run markers existed, or new settings: record who owns the directory
    // from now on, what it trains, and with which settings.
    await this.storeMarker({ ...this.marker, configSha256, model: config.model.name, settings });
  }

  /**
   * Records the training data the run trains on (`sha256`: their sampleSetDigest). Returns a warning
   * when a resumed run's data differ from those recorded: their count is checked with the checkpoint,
   * but other samples of the same count give other batches from here on, and the run goes on with
   * them (recorded from now on), as a team that fixed its labels may want.
   */
  async recordTrainingData(samples: number, sha256: string): Promise<string | undefined> {
    const recorded = this.marker.trainingData;
    if (recorded?.sha256 === sha256 && recorded.samples === samples) return undefined;
    await this.storeMarker({ ...this.marker, trainingData: { samples, sha256 } });
    if (recorded === undefined) return undefined;
    return (
      `the training data differ from those the run trained on so far (${recorded.samples} samples, SHA-256 ` +
      `${recorded.sha256.slice(0, 12)}…; now ${samples}, ${sha256.slice(0, 12)}…): its steps from here train ` +
      'on these data; resume with the data it started with for the run it would have been'
    );
  }

  private async storeMarker(marker: RunMarker): Promise<void> {
    await writeAtomically(join(this.path, RunFiles.MARKER), `${JSON.stringify(marker, null, 2)}\n`, true);
    this.marker = marker;
  }

  /** Records the finished run's summary: a later --resume reports it instead of training again. */
  async recordSummary(summary: RunSummary): Promise<void> {
    await writeAtomically(join(this.path, RunFiles.SUMMARY), `${JSON.stringify(summary, null, 2)}\n`);
  }

  /**
   * After a failed start, or a new run that stopped before its first step: removes what this process
   * created and puts back the previous run's files it moved aside, so no empty or half-claimed
   * directory is left and the same command can run again. Anything else in the directory (a trace file,
   * say) stays, and so do the directories holding it. A resumed run's directory is left as it is.
   */
  async discardUnstarted(): Promise<void> {
    await this.releaseLock();
    const { directories, files, replaced } = this.created;
    this.created = NOTHING_CREATED;
    for (const path of files) await rm(path, { recursive: true, force: true });
    if (replaced !== undefined) {
      for (const name of replaced.names) await rename(join(replaced.aside, name), join(this.path, name));
      await rmdir(replaced.aside);
    }
    // Innermost first, each only if nothing else was put in it.
    for (const directory of [...directories].reverse()) await rmdir(directory).catch(() => undefined);
  }
}

/**
 * A coordinator's claim on its run directory while it runs: its pid, host and (on Linux) which process
 * that pid was when it took the lock (processIdentity). Two coordinators in one
 * directory would interleave their steps in metrics.jsonl and their checkpoints (a resume of a run that
 * is still training, say).
 */
export const LOCK_FILE = 'coordinator.lock';
/**
 * The run directories this process holds. A lock naming this process's pid is one of these, or was left
 * by an earlier process with the same pid: a container's coordinator is pid 1 again after a restart.
 */
const lockedHere = new Set<string>();

/**
 * Takes the run directory at `path` for this process, unless another coordinator on this machine
 * holds it (then refused, naming it). A lock of a process that no longer runs here is stale; one from
 * another host cannot be checked, and is taken over with a log line (a coordinator restarted on another
 * node, its old pod gone). Returns false where there is no directory yet.
 */
async function takeLock(path: string, log: (line: string) => void): Promise<boolean> {
  const lockPath = join(path, LOCK_FILE);
  const mine = JSON.stringify({ pid: process.pid, host: hostname(), process: processIdentity(process.pid) });
  for (let attempt = 0; ; attempt += 1) {
    try {
      await createLock(lockPath, `${mine}\n`);
      lockedHere.add(resolve(path));
      return true;
    } catch (error) {
      const code = systemErrorCode(error);
      // No directory (yet), or a file in its place: the claim or reopen that follows says which.
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      // A lock again where the stale one was just removed: another coordinator took it meanwhile.
      if (code === 'EEXIST' && attempt > 0) throw startingAlongside(path, lockPath);
      if (code !== 'EEXIST') {
        throw runDirectoryError(path, 'cannot write to', error as NodeJS.ErrnoException, lockPath);
      }
    }
    const holder = await readLock(lockPath);
    // This process's pid: held only if this process took it (else an earlier process's, restarted).
    const holderRuns =
      holder?.pid === process.pid
        ? lockedHere.has(resolve(path))
        : holder !== undefined && processRuns(holder.pid) && sameProcess(holder);
    if (holder !== undefined && holder.host === hostname() && holderRuns) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `${path} is in use by another coordinator (pid ${holder.pid} on this machine): stop it first, or use another --out (outDir from a program)`,
      );
    }
    if (holder !== undefined && holder.host !== hostname()) {
      log(
        `coordinator: ${lockPath} names a coordinator on ${holder.host} (pid ${holder.pid}); taking the run directory over, as that one must have stopped`,
      );
    }
    await rm(lockPath, { force: true });
  }
}

/** Errors of link(2) on a file system without hard links (FAT, SMB, some FUSE mounts). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK', 'EXDEV']);

/**
 * The temporary file a lock is written to before it is linked into place:
 * `coordinator.lock.<pid>.<random>.tmp`. The random part keeps two coordinators of one pid (pid 1 in two
 * containers on a shared volume) from writing, linking and removing each other's file. For the same
 * reason a lock's temporary file is never removed as stale (removeStaleTemporaryFiles): its pid does not
 * tell whose it is; createLock removes its own, and a crash leaves at most a few bytes. A property, so
 * that a test can put a file of its choosing there (a link to /dev/full).
 */
export const lockTemporary = {
  path: (lockPath: string): string => `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
};

/**
 * Creates the lock file `lockPath` holding `content`, failing with EEXIST if there is one: the content is
 * written to a temporary file of its own first (lockTemporary) and hard-linked into place, so that a lock is never seen half
 * written, and a write that fails (ENOSPC) leaves no lock behind. Where the file system has no hard
 * links, the lock is created exclusively and written; one that cannot be written is removed again.
 */
async function createLock(lockPath: string, content: string): Promise<void> {
  const temporary = lockTemporary.path(lockPath);
  try {
    await writeFile(temporary, content);
    await link(temporary, lockPath);
    // Not awaited: the caller records the lock as this process's before any other I/O is answered, so
    // that another run of this process reading the lock meanwhile never takes it for a stale one.
    void rm(temporary, { force: true }).catch(() => undefined);
    return;
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    if (!NO_HARD_LINKS.has(systemErrorCode(error) ?? '')) throw error;
  }
  const file = await open(lockPath, 'wx');
  try {
    await file.writeFile(content);
  } catch (error) {
    await file.close().catch(() => undefined);
    // This process created it: an empty or partial lock would hold the directory for nobody.
    await rm(lockPath, { force: true }).catch(() => undefined);
    throw error;
  }
  await file.close();
}

/** Removes the lock at `path` if this process holds it. */
async function releaseLock(path: string): Promise<void> {
  const lockPath = join(path, LOCK_FILE);
  if (!lockedHere.delete(resolve(path))) return;
  const holder = await readLock(lockPath);
  if (holder?.pid === process.pid && holder.host === hostname()) await rm(lockPath, { force: true });
}

interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** processIdentity of the pid when it took the lock; absent where it could not be read. */
  readonly process?: string;
}

/**
 * Whether the process running with the holder's pid is the holder, not another that got its pid later
 * (a restarted container whose new processes count from 1 again): told apart by processIdentity where
 * both are known, else assumed.
 */
function sameProcess(holder: LockHolder): boolean {
  const now = processIdentity(holder.pid);
  return holder.process === undefined || now === undefined || now === holder.process;
}

/** The holder a lock file names; undefined if it is gone or unreadable (a crash mid-write: stale). */
async function readLock(lockPath: string): Promise<LockHolder | undefined> {
  try {
    const holder = JSON.parse(await readFile(lockPath, 'utf8')) as Record<string, unknown>;
    return typeof holder.pid === 'number' && typeof holder.host === 'string'
      ? {
          pid: holder.pid,
          host: holder.host,
          ...(typeof holder.process === 'string' ? { process: holder.process } : {}),
        }
      : undefined;
  } catch {
    return undefined;
  }
}

/** What a new run put in its directory. */
interface Created {
  /** The directories made for it, outermost first. */
  readonly directories: readonly string[];
  /** Its files (and the checkpoint directory). */
  readonly files: readonly string[];
  /** With overwrite: the directory the previous run's files were moved into, and their names. */
  readonly replaced: { readonly aside: string; readonly names: readonly string[] } | undefined;
}

const NOTHING_CREATED: Created = { directories: [], files: [], replaced: undefined };

/**
 * The model the run in `path` trains, as its marker names it (`task:<name>`, or a built-in model's
 * name), else as its newest checkpoint does; undefined when neither can be read.
 */
export async function storedModel(path: string): Promise<string | undefined> {
  const recorded = (await readMarker(path).catch(() => undefined))?.model;
  if (recorded !== undefined) return recorded;
  // A marker from before the model was recorded: the newest checkpoint's config names it too.
  try {
    const { checkpoint } = await loadLatestCheckpoint(join(path, RunFiles.CHECKPOINTS), () => {});
    return checkpoint.config.model.name;
  } catch {
    return undefined;
  }
}

/** The summary of the completed run in `path`, or undefined if it has none (not finished, or no run). */
export async function storedSummary(path: string): Promise<RunSummary | undefined> {
  let text: string;
  try {
    text = await readFile(join(path, RunFiles.SUMMARY), 'utf8');
  } catch {
    return undefined;
  }
  try {
    // JSON has no NaN: a figure that was not measured is stored as null.
    const summary = JSON.parse(text, (_key, value) => (value === null ? Number.NaN : value)) as RunSummary;
    // Summaries stored before redoneSteps was counted.
    return { ...summary, redoneSteps: summary.redoneSteps ?? 0 };
  } catch {
    throw new CallosumError(ErrorCodes.ARTIFACT_INVALID, `${join(path, RunFiles.SUMMARY)} is not valid JSON`);
  }
}

function newMarker(): RunMarker {
  return {
    format: MARKER_FORMAT,
    runId: randomUUID(),
    createdAt: new Date().toISOString(),
    configSha256: '',
  };
}

/** SHA-256 of the config as JSON with sorted keys, so equal configs hash equally whatever their key order. */
export function configHash(config: TrainingConfig): string {
  const canonical = (value: unknown): unknown =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.entries(value)
            .filter(([, entry]) => entry !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([key, entry]) => [key, canonical(entry)]),
        )
      : value;
  return createHash('sha256')
    .update(JSON.stringify(canonical(config)))
    .digest('hex');
}

async function requireDirectory(path: string, purpose: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch {
    throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `no run directory ${path} ${purpose}`);
  }
  if (!isDirectory) {
    throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `${path} is a file, not a run directory ${purpose}`);
  }
}

async function readMarker(path: string): Promise<RunMarker | undefined> {
  let text: string;
  try {
    text = await readFile(join(path, RunFiles.MARKER), 'utf8');
  } catch {
    return undefined; // a run directory from before markers existed
  }
  try {
    const marker = JSON.parse(text) as RunMarker;
    if (
      marker.format === MARKER_FORMAT &&
      typeof marker.configSha256 === 'string' &&
      validSettings(marker.settings) &&
      (marker.model === undefined || typeof marker.model === 'string') &&
      (marker.trainingData === undefined ||
        (Number.isSafeInteger(marker.trainingData.samples) &&
          /^[0-9a-f]{64}$/.test(String(marker.trainingData.sha256))))
    ) {
      return marker;
    }
  } catch {
    // reported below
  }
  throw new CallosumError(ErrorCodes.ARTIFACT_INVALID, `${join(path, RunFiles.MARKER)} is not a run marker`);
}

function validSettings(settings: StoredRunSettings | undefined): boolean {
  return settings === undefined || storedRunSettingsSchema.safeParse(settings).success;
}

/** What a directory holds, for whether a run may start or continue there. */
export type RunDirectoryState = 'empty' | 'finished' | 'unresumable' | 'resumable';

/**
 * What `path` holds: no run files; a finished run (it has a summary, readable or not); a run's files
 * without a checkpoint to continue from (its run stopped before the first); or a run with checkpoints.
 */
export async function runDirectoryState(path: string): Promise<RunDirectoryState> {
  return stateOf(path, await runFilesIn(path).catch((): string[] => []));
}

/** runDirectoryState for a directory whose run files, `taken`, have been listed already. */
async function stateOf(path: string, taken: readonly string[]): Promise<RunDirectoryState> {
  if (taken.length === 0) return 'empty';
  if (taken.includes(RunFiles.SUMMARY)) return 'finished';
  return (await holdsCheckpoints(join(path, RunFiles.CHECKPOINTS))) ? 'resumable' : 'unresumable';
}

/** Why a new run may not use `path`, which holds the run files `taken`, and what to do instead. */
async function occupiedRefusal(path: string, taken: readonly string[]): Promise<string> {
  const alternatives =
    'start a new run in a new directory (--out; outDir from a program), or move the old files aside ' +
    '(--overwrite; overwrite: true from a program)';
  switch (await stateOf(path, taken)) {
    case 'finished':
      return `${path} already holds a finished run (${taken.join(', ')}): ${alternatives}`;
    case 'resumable':
      return `${path} already holds a run (${taken.join(', ')}): continue it with --resume ${path} (resume: true from a program), ${alternatives}`;
    default:
      return `${path} already holds a run's files (${taken.join(', ')}) but no checkpoint to continue it from: ${alternatives}`;
  }
}

/** Names of run files already in `path`. */
async function runFilesIn(path: string): Promise<string[]> {
  return (await readdir(path)).filter((name) => RUN_FILE_NAMES.includes(name)).sort();
}

/**
 * Creates `path` and any missing parents one level at a time, and returns the ones it created (outermost
 * first). Not `mkdir({ recursive: true })`: on Node 20 that loops forever at 100% CPU under /proc.
 */
async function createDirectories(path: string): Promise<string[]> {
  const missing: string[] = [];
  let current = resolve(path);
  for (;;) {
    const found = await stat(current).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw runDirectoryError(path, 'cannot create', error);
    });
    if (found !== undefined) {
      if (!found.isDirectory()) {
        throw new CallosumError(
          ErrorCodes.INVALID_ARGUMENT,
          `cannot use ${path} as a run directory: ${current} is a file`,
        );
      }
      break;
    }
    missing.unshift(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  const created: string[] = [];
  try {
    for (const directory of missing) {
      try {
        await mkdir(directory);
        created.push(directory);
      } catch (error) {
        // Made by someone else since it was looked at: a parent is as good (another run may be starting
        // beside this one); the run directory itself means another run is starting in it.
        if (systemErrorCode(error) !== 'EEXIST') throw error;
        if (directory === resolve(path)) throw startingAlongside(path, directory);
        if (!(await stat(directory)).isDirectory()) throw error;
      }
    }
  } catch (error) {
    // Innermost first, each only if it is still empty: another run may have put its directory in one.
    for (const directory of created.reverse()) await rmdir(directory).catch(() => undefined);
    if (error instanceof CallosumError) throw error;
    throw runDirectoryError(path, 'cannot create', error as NodeJS.ErrnoException);
  }
  return created;
}

/** The option that names the run directory, for both kinds of caller (as the other messages here name it). */
const OUT_OPTION = '--out; outDir from a program';

/**
 * Two runs starting in one directory at the same moment: `made` (the directory, its checkpoints, its lock)
 * appeared between this run's look and its own creating it (EEXIST), made by the other run, which has
 * the directory now.
 */
function startingAlongside(path: string, made: string): CallosumError {
  return new CallosumError(
    ErrorCodes.INVALID_ARGUMENT,
    `${path} is in use by another run starting in it at the same time (it created ${made} first: EEXIST): ` +
      `start this run in another directory (${OUT_OPTION}), or wait for that one to end`,
  );
}

/**
 * A run directory that cannot be used: INVALID_ARGUMENT, naming it, for the user to choose another --out.
 * A full disk (ENOSPC, EDQUOT) is no bad --out: it is WRITE_FAILED, naming the file (`file`, else the
 * one the error names, else the directory) and the device, as every other write that fails says it.
 */
function runDirectoryError(path: string, action: string, error: Error, file?: string): CallosumError {
  const code = systemErrorCode(error);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return writeFailure(file ?? (error as NodeJS.ErrnoException).path ?? path, error);
  }
  return new CallosumError(
    ErrorCodes.INVALID_ARGUMENT,
    `${action} the run directory ${path} (${systemErrorCode(error) ?? error.message}); choose a writable directory (${OUT_OPTION})`,
    { cause: error },
  );
}

/**
 * Writes a run file atomically (old content or new, never a part). The marker, the first write of a new
 * run, refuses a directory that cannot be written as a bad --out; any later write fails with core's
 * WRITE_FAILED, naming the file and the directory's trouble.
 */
async function writeAtomically(path: string, content: string, asOut = false): Promise<void> {
  await writeFileAtomically(path, content).catch((error: Error) => {
    throw asOut ? runDirectoryError(dirname(path), 'cannot write to', error) : error;
  });
}
