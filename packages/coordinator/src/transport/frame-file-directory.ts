import { linkSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FrameFileLink, type FrameFileOffer, writeFrameFile, writeProbe } from '@callosum/core';

/** A memory file system: frame files only pay off where a write is a copy into memory. */
const MEMORY_FILE_SYSTEM = '/dev/shm';
const PREFIX = 'callosum-frames-';
/** `callosum-frames-<pid>-<random>`: the pid tells whether the coordinator that made it still runs. */
const DIRECTORY_NAME = /^callosum-frames-(\d+)-/;

/**
 * The coordinator's directory of frame files (core's frame-files.ts) for its workers on this machine:
 * made at start on /dev/shm (mode 0700), removed at close. A coordinator that was killed cannot remove
 * its own, so each one also removes those of this user's coordinators that no longer run.
 */
export class FrameFileDirectory {
  /** Channels offered in a welcome whose worker has not answered yet. */
  readonly #offered = new Set<string>();
  /** The last frame written, in a file of its own that each channel's file for it is a link to. */
  #shared: { frame: Uint8Array; path: string } | undefined;
  #sharedCount = 0;

  private constructor(readonly path: string) {}

  /** The directory, or undefined where there is no writable memory file system (frames stay on sockets). */
  static open(root = MEMORY_FILE_SYSTEM): FrameFileDirectory | undefined {
    try {
      removeAbandoned(root);
      return new FrameFileDirectory(mkdtempSync(join(root, `${PREFIX}${process.pid}-`)));
    } catch {
      return undefined;
    }
  }

  /** Writes a probe for `channel` (a worker's id) and returns the offer for its welcome, if it can. */
  offer(channel: string): FrameFileOffer | undefined {
    try {
      const offer = writeProbe(this.path, channel);
      this.#offered.add(channel);
      return offer;
    } catch {
      return undefined;
    }
  }

  /** The worker on `channel` read its probe: the link for its connection, or undefined if none was offered. */
  accept(channel: string, maxFrameBytes: number): FrameFileLink | undefined {
    if (!this.#offered.delete(channel)) return undefined;
    rmSync(join(this.path, `${channel}.probe`), { force: true });
    return new FrameFileLink({ dir: this.path, channel }, 'to-worker', maxFrameBytes, this.#writeOrLink);
  }

  /**
   * Every worker is sent the same weights frame: written once, then hard-linked into each channel's
   * name (a link costs microseconds, a write of 2.8 MB most of a millisecond). Each reader removes its
   * own name; the data goes with the last.
   */
  readonly #writeOrLink = (path: string, frame: Uint8Array): void => {
    if (this.#shared?.frame !== frame) {
      this.#dropShared();
      const shared = join(this.path, `shared.${this.#sharedCount++}`);
      try {
        writeFrameFile(shared, frame);
      } catch (error) {
        rmSync(shared, { force: true });
        throw error;
      }
      this.#shared = { frame, path: shared };
    }
    linkSync(this.#shared.path, path);
  };

  #dropShared(): void {
    if (this.#shared !== undefined) rmSync(this.#shared.path, { force: true });
    this.#shared = undefined;
  }

  /** The connection on `channel` closed: removes its probe and the files nobody will read. */
  release(channel: string): void {
    this.#offered.delete(channel);
    try {
      for (const name of readdirSync(this.path)) {
        if (name.startsWith(`${channel}.`)) rmSync(join(this.path, name), { force: true });
      }
    } catch {
      // Gone already (closed): nothing is left to remove.
    }
  }

  close(): void {
    this.#shared = undefined;
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** Removes the frame directories of this user's coordinators that are no longer running. */
function removeAbandoned(root: string): void {
  const uid = process.getuid?.();
  for (const name of readdirSync(root)) {
    const pid = DIRECTORY_NAME.exec(name)?.[1];
    if (pid === undefined || isRunning(Number(pid))) continue;
    const path = join(root, name);
    try {
      if (statSync(path).uid === uid) rmSync(path, { recursive: true, force: true });
    } catch {
      // Removed meanwhile by another coordinator starting, or not ours to remove.
    }
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
