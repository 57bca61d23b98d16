/** Helpers for tests of writes that fail (not part of the public API). */
import { symlink } from 'node:fs/promises';

/**
 * A pid no process can have: Linux never hands out one at or above PID_MAX_LIMIT (2^22), whatever
 * /proc/sys/kernel/pid_max says, so this stands for a writer that is gone.
 */
export const GONE_PID = 2 ** 22 + 7;

/**
 * Makes this process's next atomic write of `path` land on a full disk, without root: its temporary
 * file (named with this process's pid) is a link to /dev/full, where every write fails with ENOSPC.
 */
export async function onFullDisk(path: string): Promise<void> {
  await symlink('/dev/full', `${path}.${process.pid}.tmp`);
}
