import { readFileSync } from 'node:fs';
import { open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFailure } from './file-errors.js';

/** An atomic write's temporary file: `<name>.<pid of the writer>.tmp`, beside the file it becomes. */
const TEMPORARY_FILE = /^(.+)\.(\d+)\.tmp$/;

function temporaryPathOf(path: string): string {
  return `${path}.${process.pid}.tmp`;
}

export interface AtomicWriteOptions {
  /**
   * fsync the file before the rename and the directory after it, so that once the promise resolves the
   * new content survives a power loss too (checkpoints); without it, only a crash of the process.
   */
  readonly durable?: boolean;
}

/**
 * Writes a file so that a reader never sees it half-written: a temporary name, then a rename. A failed
 * write leaves no temporary file behind (a full disk stays no fuller than before) and rejects with
 * WRITE_FAILED naming `path` and the directory's trouble ("no space left on the device holding …").
 */
export async function writeFileAtomically(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const temporary = temporaryPathOf(path);
  try {
    if (options.durable === true) {
      const file = await open(temporary, 'w');
      try {
        await file.writeFile(data);
        await file.sync();
      } finally {
        await file.close();
      }
    } else {
      await writeFile(temporary, data);
    }
    await rename(temporary, path);
  } catch (error) {
    // Never hide the write's own error behind a failure to clean up (the temporary may not exist).
    await rm(temporary, { force: true }).catch(() => undefined);
    throw writeFailure(path, error);
  }
  if (options.durable === true) {
    try {
      const directory = await open(dirname(path), 'r');
      try {
        await directory.sync();
      } finally {
        await directory.close();
      }
    } catch (error) {
      throw writeFailure(path, error);
    }
  }
}

/**
 * Removes what atomic writes of an earlier process left in `dir`: a process killed in the middle of a
 * write (`kill -9`, the stop of a stop taking too long, a power loss) leaves its `<name>.<pid>.tmp`, and a
 * checkpoint's can be as large as the model, so left alone they fill the disk one stop at a time.
 *
 * Only files named like an atomic write's temporary file of a file `isTarget` accepts are touched, and
 * only those whose writer is gone: its pid is not a running process on this machine, or it is this
 * process's own pid. A file with this process's pid is another process's too, one that had the same pid
 * (a container restarted runs its coordinator under the pid the previous one had): the caller opens the
 * directory before this process writes there, so none of its own writes can be in flight. A temporary
 * file of a running process (another `callosum report` writing report.html, say) is left alone. Returns
 * the removed files' paths.
 */
export async function removeStaleTemporaryFiles(
  dir: string,
  isTarget: (name: string) => boolean,
): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return []; // no such directory (yet): nothing was left there
  }
  const stale = names.filter((name) => {
    const match = TEMPORARY_FILE.exec(name);
    if (match === null || !isTarget(match[1] as string)) return false;
    const pid = Number(match[2]);
    return pid === process.pid || !processRuns(pid);
  });
  const removed: string[] = [];
  for (const name of stale) {
    const path = join(dir, name);
    await rm(path, { force: true });
    removed.push(path);
  }
  return removed;
}

/**
 * Which process `pid` is, also after its pid was given to another: the machine's boot and the clock
 * tick the process started at (Linux's /proc). Undefined where it cannot be read (another OS, no such
 * process), and then only the pid tells.
 */
export function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    // The start time is field 22, the 20th after the name.
    const startTicks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return startTicks === undefined ? undefined : `${boot}:${startTicks}`;
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid runs on this machine (EPERM: it does, under another user). */
export function processRuns(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
