import { timingSafeEqual } from 'node:crypto';
import { existsSync, linkSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FrameFileLink, type FrameFileOffer, processRuns, writeFrameFile, writeProbe } from '@callosum/core';

/** A memory file system: frame files only pay off where a write is a copy into memory. */
const MEMORY_FILE_SYSTEM = '/dev/shm';
const PREFIX = 'callosum-frames-';
/** `callosum-frames-<pid>-<random>`: the pid tells whether the coordinator that made it still runs. */
const DIRECTORY_NAME = /^callosum-frames-(\d+)-/;
/**
 * A directory whose coordinator's pid does not run here is removed only once it has not changed for
 * this long: a coordinator in another pid namespace that shares /dev/shm changes its own every step
 * (and if one idle that long loses it, its workers reconnect and use their sockets).
 */
const ABANDONED_AFTER_MS = 60_000;
/** A weights file that every worker has read, kept to write the next weights into (no new pages). */
const SHARED_SPARE = 'shared.spare';

/** What a worker's `frame-files` answer comes to. */
export type FrameFileAnswer = { readonly link: FrameFileLink } | { readonly refused: string };

/**
 * The coordinator's directory of frame files (core's frame-files.ts) for its workers on this machine:
 * made at start on /dev/shm (mode 0700), removed at close. A coordinator that was killed cannot remove
 * its own, so each one also removes those of this user's coordinators that no longer run.
 */
export class FrameFileDirectory {
  /** The probe offered to each channel whose worker has not answered yet. */
  readonly #offered = new Map<string, string>();
  /** Channels whose worker answered. */
  readonly #accepted = new Set<string>();
  /** The last weights frame written, in a file of its own that each channel's file for it links to. */
  #shared: { frame: Uint8Array; path: string } | undefined;
  #sharedCount = 0;
  #offerFailed = false;

  private constructor(
    readonly path: string,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * The directory, or undefined where there is no memory file system (frames stay on the sockets; said
   * in the log when /dev/shm exists but refuses).
   */
  static open(log: (line: string) => void, root = MEMORY_FILE_SYSTEM): FrameFileDirectory | undefined {
    if (!existsSync(root)) return undefined;
    try {
      removeAbandoned(root);
      return new FrameFileDirectory(mkdtempSync(join(root, `${PREFIX}${process.pid}-`)), log);
    } catch (error) {
      log(`coordinator: frame files off, every frame goes on the sockets: ${(error as Error).message}`);
      return undefined;
    }
  }

  /** Writes a probe for `channel` (a worker's id) and returns the offer for its welcome, if it can. */
  offer(channel: string): FrameFileOffer | undefined {
    try {
      this.#offered.set(channel, writeProbe(this.path, channel));
      return { dir: this.path, channel };
    } catch (error) {
      if (!this.#offerFailed) this.log(`coordinator: no frame files offered: ${(error as Error).message}`);
      this.#offerFailed = true;
      return undefined;
    }
  }

  /** The worker on `channel` answered with `probe`: its link, or why it is refused. */
  accept(channel: string, probe: string, maxFrameBytes: number): FrameFileAnswer {
    const offered = this.#offered.get(channel);
    if (offered === undefined) {
      return {
        refused: this.#accepted.has(channel)
          ? 'sent frame-files twice'
          : 'sent frame-files, but was offered none',
      };
    }
    this.#offered.delete(channel);
    rmSync(join(this.path, `${channel}.probe`), { force: true });
    if (!timingSafeEqual(Buffer.from(offered), Buffer.from(probe))) {
      return { refused: 'sent frame-files with another probe than its directory holds' };
    }
    this.#accepted.add(channel);
    const link = new FrameFileLink({ dir: this.path, channel }, 'to-worker', {
      maxFrameBytes,
      writeBroadcast: this.#writeOrLink,
      onFilesFailed: (reason) => this.log(`coordinator: worker ${channel}: ${reason}`),
    });
    return { link };
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
        writeFrameFile(shared, frame, join(this.path, SHARED_SPARE));
      } catch (error) {
        rmSync(shared, { force: true });
        throw error;
      }
      this.#shared = { frame, path: shared };
    }
    linkSync(this.#shared.path, path);
  };

  /**
   * The last weights frame's own name goes; its file becomes the spare the next one is written into if
   * no worker's name for it is left (workers remove their name only after reading and closing it).
   */
  #dropShared(): void {
    if (this.#shared === undefined) return;
    const { path } = this.#shared;
    this.#shared = undefined;
    try {
      if (statSync(path).nlink === 1) {
        renameSync(path, join(this.path, SHARED_SPARE));
        return;
      }
    } catch {
      // Gone: nothing to keep.
    }
    rmSync(path, { force: true });
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

  /** Removes the directory. Never throws: what a worker still writes meanwhile is swept by a later start. */
  close(): void {
    this.#shared = undefined;
    try {
      rmSync(this.path, { recursive: true, force: true, maxRetries: 3 });
    } catch (error) {
      this.log(`coordinator: could not remove ${this.path}: ${(error as Error).message}`);
    }
  }
}

/** Removes the frame directories of this user's coordinators that are no longer running. */
function removeAbandoned(root: string): void {
  const uid = process.getuid?.();
  for (const name of readdirSync(root)) {
    const pid = DIRECTORY_NAME.exec(name)?.[1];
    if (pid === undefined || processRuns(Number(pid))) continue;
    const path = join(root, name);
    try {
      const stats = statSync(path);
      if (stats.uid === uid && Date.now() - stats.mtimeMs > ABANDONED_AFTER_MS) {
        rmSync(path, { recursive: true, force: true });
      }
    } catch {
      // Removed meanwhile by another coordinator starting, or not ours to remove.
    }
  }
}
