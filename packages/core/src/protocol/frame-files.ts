import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { CallosumError, ErrorCodes } from '../errors.js';
import { TENSOR_FRAME_MIN_BYTES } from './tensor-frame.js';

/**
 * Frame files (protocol 1.9): between a coordinator and a worker on the same machine, a large frame (a
 * weights broadcast, a gradient) travels as a file on a memory file system and the socket carries an
 * 8-byte reference to it. Loopback TCP moves every byte through the kernel's network stack: 2.8 MB
 * cost 1.35 ms to write and 0.45 ms to read back on the machine of docs/benchmarks.md, a file on
 * /dev/shm 0.41 ms to create and write and 0.36 ms to read and remove.
 *
 * The coordinator owns a private directory (mode 0700) and offers it in the welcome with a channel name
 * for the connection; `<dir>/<channel>.probe` holds random bytes that only a process seeing the same
 * directory can read. A worker that reads them answers `frame-files` with them and from then on may
 * send large frames as files; the coordinator does the same once the answer matches. Every receiver
 * still takes ordinary frames at any time, so a sender whose file cannot be written sends the frame on
 * the socket instead.
 *
 * A reference frame: magic C1 46 46 31 (0xC1 is never valid MessagePack; a tensor frame's second byte is
 * 0x54), then a little-endian uint32 sequence number. The file it stands for is
 * `<dir>/<channel>.<to-worker|to-coordinator>.<sequence>`, written whole and closed by the sender before
 * the reference is sent, read once by the receiver and then removed or made the sender's spare. The
 * receiver builds that name itself from its own directory and the next sequence number it expects, so a
 * reference names no path and cannot be replayed or reordered.
 */
export const FRAME_FILE_REFERENCE_MAGIC = Uint8Array.of(0xc1, 0x46, 0x46, 0x31);
const REFERENCE_BYTES = 8;
/** Frames smaller than this stay on the socket: a file costs more than copying them. */
export const FRAME_FILE_MIN_BYTES = TENSOR_FRAME_MIN_BYTES;

/** Which way a channel's files go. */
export type FrameFileDirection = 'to-worker' | 'to-coordinator';

/** What a welcome offers (`welcome.frameFiles`). */
export interface FrameFileOffer {
  /** The coordinator's directory for frame files, an absolute path. */
  readonly dir: string;
  /** This connection's prefix of file names in it. */
  readonly channel: string;
}

/** Options of one end of a channel. */
export interface FrameFileLinkOptions {
  /** Largest frame accepted from a file, as for a frame on the socket. */
  readonly maxFrameBytes: number;
  /**
   * Makes the file at `path` (which must not exist) hold a frame sent to several receivers, e.g. by
   * linking the file written for the first. Without it, such frames are written like any other.
   */
  readonly writeBroadcast?: (path: string, frame: Uint8Array) => void;
  /** Told once, why files stopped: every large frame goes on the socket from then on. */
  readonly onFilesFailed?: (reason: string) => void;
}

/**
 * Sent files a link remembers, to count those not read yet: enough for any frame of 64 KiB or more to
 * pass a bound of 4 frames plus 64 KiB each (the coordinator's slow-reader limit).
 */
const REMEMBERED_FILES = 16;
/** The memory of frames read from files comes in multiples of this many bytes. */
const RECYCLED_SIZE_STEP = 64 * 1024;
const PROBE_BYTES = 16;

export function isFrameFileReference(frame: Uint8Array): boolean {
  return FRAME_FILE_REFERENCE_MAGIC.every((byte, i) => frame[i] === byte);
}

function frameFilePath(
  dir: string,
  channel: string,
  direction: FrameFileDirection,
  sequence: number,
): string {
  return join(dir, `${channel}.${direction}.${sequence}`);
}

/**
 * The spare of a direction whose files are recycled, else undefined. Files to the coordinator are: it
 * renames each one it has read to the spare (replacing any), and the worker's next file may be that
 * one, renamed and overwritten. A new file costs tmpfs a page allocation and zeroing per 4 KiB, most of
 * its price in a run. (Files to workers are weights the coordinator recycles itself.)
 */
function spareFilePath(dir: string, channel: string, direction: FrameFileDirection): string | undefined {
  return direction === 'to-coordinator' ? join(dir, `${channel}.to-coordinator.spare`) : undefined;
}

function probePath(offer: FrameFileOffer): string {
  return join(offer.dir, `${offer.channel}.probe`);
}

/**
 * Writes a new probe for `channel` in `dir`: random bytes that only a process seeing the directory can
 * read, and so echo in its `frame-files` answer. Returns them (hex).
 */
export function writeProbe(dir: string, channel: string): string {
  const probe = randomBytes(PROBE_BYTES).toString('hex');
  const fd = openSync(probePath({ dir, channel }), 'wx', 0o600);
  try {
    writeSync(fd, probe);
  } finally {
    closeSync(fd);
  }
  return probe;
}

/** The offered directory's probe (hex), or undefined where this process does not see it. */
export function readProbe(offer: FrameFileOffer): string | undefined {
  try {
    const probe = readRegularFile(probePath(offer), 2 * PROBE_BYTES).toString('latin1');
    return /^[0-9a-f]{32}$/.test(probe) ? probe : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One side's end of a channel: turns large outgoing frames into files and references, and references
 * received back into the frames they stand for.
 */
export class FrameFileLink {
  #sendSequence = 0;
  #receiveSequence = 0;
  /** Cleared by the first file that cannot be written: frames go on the socket from then on. */
  #sendingFiles = true;
  /** The last files sent and their sizes, oldest first. */
  readonly #sent: { path: string; bytes: number }[] = [];
  /** Memory of frames received that their reader is done with, to read later frames into. */
  readonly #recycled: ArrayBuffer[] = [];
  /** The memory of frames `incoming` read from files and that were not recycled since. */
  readonly #handedOut = new WeakSet<ArrayBuffer>();

  constructor(
    private readonly offer: FrameFileOffer,
    private readonly sends: FrameFileDirection,
    private readonly options: FrameFileLinkOptions,
  ) {}

  private get receives(): FrameFileDirection {
    return this.sends === 'to-worker' ? 'to-coordinator' : 'to-worker';
  }

  /**
   * What to put on the socket for `frame`: the frame itself when it is small (or files failed), else a
   * reference to the file now holding it. `broadcast`: the same frame goes to other receivers too.
   */
  outgoing(frame: Uint8Array, broadcast = false): Uint8Array {
    if (!this.#sendingFiles || frame.byteLength < FRAME_FILE_MIN_BYTES) return frame;
    const { dir, channel } = this.offer;
    const sequence = this.#sendSequence;
    const path = frameFilePath(dir, channel, this.sends, sequence);
    try {
      if (broadcast && this.options.writeBroadcast !== undefined) this.options.writeBroadcast(path, frame);
      else writeFrameFile(path, frame, spareFilePath(dir, channel, this.sends));
    } catch (error) {
      // A full /dev/shm, say: this frame and the following ones go on the socket, which always works.
      rmSync(path, { force: true });
      this.#sendingFiles = false;
      this.options.onFilesFailed?.(
        `cannot write ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); large frames go on the socket from now on`,
      );
      return frame;
    }
    this.#sendSequence = (sequence + 1) >>> 0;
    this.#sent.push({ path, bytes: frame.byteLength });
    if (this.#sent.length > REMEMBERED_FILES) this.#sent.shift();
    const reference = Buffer.alloc(REFERENCE_BYTES);
    reference.set(FRAME_FILE_REFERENCE_MAGIC, 0);
    reference.writeUInt32LE(sequence, 4);
    return reference;
  }

  /**
   * `buffer`, under a frame `incoming` read from a file, holds nothing its reader needs any more: a
   * later frame may be read into it instead of new memory (a frame's worth of page faults, and garbage
   * that makes V8 collect every few steps). Any other memory (a frame that came on the socket, whose
   * memory may hold more) is ignored, as is memory recycled already; at most two are kept.
   */
  recycle(buffer: ArrayBuffer): void {
    if (!this.#handedOut.delete(buffer) || this.#recycled.length >= 2) return;
    this.#recycled.push(buffer);
  }

  /**
   * The bytes of the last files sent that the receiver has not read yet (they still exist): frames
   * waiting for it, as bytes queued on a socket are.
   */
  unreadBytes(): number {
    // Read in order (the sequence is checked), so the unread ones are the newest: from the newest back.
    let total = 0;
    for (let i = this.#sent.length - 1; i >= 0; i--) {
      const file = this.#sent[i] as { path: string; bytes: number };
      if (!existsSync(file.path)) break;
      total += file.bytes;
    }
    return total;
  }

  /**
   * The frame `frame` stands for if it is a reference (read from its file, which is then removed or
   * made the sender's spare), else `frame` itself.
   */
  incoming(frame: Buffer): Buffer {
    if (!isFrameFileReference(frame)) return frame;
    if (frame.byteLength !== REFERENCE_BYTES) {
      throw malformed(`reference of ${frame.byteLength} bytes (expected ${REFERENCE_BYTES})`);
    }
    const sequence = frame.readUInt32LE(4);
    if (sequence !== this.#receiveSequence) {
      throw malformed(`reference to file ${sequence} where file ${this.#receiveSequence} comes next`);
    }
    const { dir, channel } = this.offer;
    const path = frameFilePath(dir, channel, this.receives, sequence);
    let whole: Buffer;
    try {
      whole = readRegularFile(path, this.options.maxFrameBytes, this.#recycled);
    } catch (error) {
      rmSync(path, { force: true });
      throw error;
    }
    this.#receiveSequence = (sequence + 1) >>> 0;
    returnFile(path, spareFilePath(dir, channel, this.receives));
    this.#handedOut.add(whole.buffer as ArrayBuffer);
    return whole;
  }
}

/**
 * The whole of the regular file at `path`, at most `maxBytes`, read into the first of `recycled` it
 * fits in (taken from the list) or else new memory. Never follows a link, and never waits on a FIFO
 * (O_NONBLOCK); what it returns starts an ArrayBuffer, so a tensor in it starts 8-byte aligned.
 */
function readRegularFile(path: string, maxBytes: number, recycled: ArrayBuffer[] = []): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw malformed(`${path} cannot be opened (${(error as NodeJS.ErrnoException).code})`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw malformed(`${path} is not a regular file`);
    if (stats.size > maxBytes) {
      throw malformed(`${path} holds ${stats.size} bytes, more than a frame may (${maxBytes})`);
    }
    // New memory is rounded up, so that it fits the next frames of about this size (whose trailers
    // may be a few bytes longer) once it is recycled. Recycled memory goes only to a frame of about its
    // size: a small frame its reader never recycles (a request) would use up memory meant for weights.
    const rounded = Math.ceil(stats.size / RECYCLED_SIZE_STEP) * RECYCLED_SIZE_STEP;
    const fits = recycled.findIndex(
      (buffer) => buffer.byteLength >= stats.size && buffer.byteLength <= 2 * rounded,
    );
    const memory =
      fits >= 0 ? (recycled.splice(fits, 1)[0] as ArrayBuffer) : Buffer.allocUnsafeSlow(rounded).buffer;
    const whole = Buffer.from(memory, 0, stats.size);
    for (let read = 0; read < whole.byteLength; ) {
      const got = readSync(fd, whole, read, whole.byteLength - read, read);
      if (got === 0) throw malformed(`${path} ended after ${read} of ${stats.size} bytes`);
      read += got;
    }
    return whole;
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes the file at `path` (which must not exist) hold `frame`, readable by this user only: the `spare`
 * file renamed and overwritten if there is one, else a new file.
 */
export function writeFrameFile(path: string, frame: Uint8Array, spare?: string): void {
  const reused = spare !== undefined && renamed(spare, path);
  const fd = reused ? openSync(path, constants.O_WRONLY | constants.O_NOFOLLOW) : openSync(path, 'wx', 0o600);
  try {
    for (let written = 0; written < frame.byteLength; ) {
      written += writeSync(fd, frame, written, frame.byteLength - written);
    }
    if (reused) ftruncateSync(fd, frame.byteLength);
  } finally {
    closeSync(fd);
  }
}

/** A file read whole and closed goes back to its sender as the spare if it has one, else away. */
function returnFile(path: string, spare: string | undefined): void {
  if (spare === undefined || !renamed(path, spare)) rmSync(path, { force: true });
}

function renamed(from: string, to: string): boolean {
  try {
    renameSync(from, to);
    return true;
  } catch {
    return false;
  }
}

function malformed(what: string): CallosumError {
  return new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `frame file ${what}`);
}
