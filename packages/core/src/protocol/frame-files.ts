import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
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
 * for the connection and a probe: a file holding random bytes that only a process seeing the same
 * directory can read. A worker that reads the probe back answers `frame-files` and from then on may
 * send large frames as files; the coordinator does the same once it has the answer. Every receiver
 * still takes ordinary frames at any time, so a sender whose file cannot be written sends the frame on
 * the socket instead.
 *
 * A reference frame: magic C1 46 46 31 (0xC1 is never valid MessagePack; a tensor frame's second byte is
 * 0x54), then a little-endian uint32 sequence number. The file it stands for is
 * `<dir>/<channel>.<to-worker|to-coordinator>.<sequence>`, written whole and closed by the sender before
 * the reference is sent, read once and removed by the receiver. The receiver builds that name itself
 * from its own directory and the next sequence number it expects, so a reference names no path and
 * cannot be replayed or reordered.
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
  /** Hex of the bytes in `<dir>/<channel>.probe`. */
  readonly probe: string;
}

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

export function probePath(offer: Pick<FrameFileOffer, 'dir' | 'channel'>): string {
  return join(offer.dir, `${offer.channel}.probe`);
}

/** Writes a new probe for `channel` in `dir` and returns the offer naming it. */
export function writeProbe(dir: string, channel: string): FrameFileOffer {
  const probe = randomBytes(16).toString('hex');
  const fd = openSync(probePath({ dir, channel }), 'wx', 0o600);
  try {
    writeSync(fd, probe);
  } finally {
    closeSync(fd);
  }
  return { dir, channel, probe };
}

/** Whether this process sees the offered directory: its probe holds the offered bytes. */
export function probeMatches(offer: FrameFileOffer): boolean {
  try {
    return readFileSync(probePath(offer), 'utf8') === offer.probe;
  } catch {
    return false;
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

  constructor(
    private readonly offer: Pick<FrameFileOffer, 'dir' | 'channel'>,
    private readonly sends: FrameFileDirection,
    /** Largest frame accepted from a file, as for a frame on the socket. */
    private readonly maxFrameBytes: number,
    /** Creates the file at `path` holding `frame`; it must not exist yet. */
    private readonly writeFile: (path: string, frame: Uint8Array) => void = writeFrameFile,
  ) {}

  private get receives(): FrameFileDirection {
    return this.sends === 'to-worker' ? 'to-coordinator' : 'to-worker';
  }

  /**
   * What to put on the socket for `frame`: the frame itself when it is small (or files failed), else a
   * reference to the file now holding it.
   */
  outgoing(frame: Uint8Array): Uint8Array {
    if (!this.#sendingFiles || frame.byteLength < FRAME_FILE_MIN_BYTES) return frame;
    const sequence = this.#sendSequence;
    const path = frameFilePath(this.offer.dir, this.offer.channel, this.sends, sequence);
    try {
      this.writeFile(path, frame);
    } catch {
      // A full /dev/shm, say: this frame and the following ones go on the socket, which always works.
      rmSync(path, { force: true });
      this.#sendingFiles = false;
      return frame;
    }
    this.#sendSequence = (sequence + 1) >>> 0;
    const reference = Buffer.alloc(REFERENCE_BYTES);
    reference.set(FRAME_FILE_REFERENCE_MAGIC, 0);
    reference.writeUInt32LE(sequence, 4);
    return reference;
  }

  /** The frame `frame` stands for: read from its file (then removed) if it is a reference, else itself. */
  incoming(frame: Buffer): Buffer {
    if (!isFrameFileReference(frame)) return frame;
    if (frame.byteLength !== REFERENCE_BYTES) {
      throw malformed(`reference of ${frame.byteLength} bytes (expected ${REFERENCE_BYTES})`);
    }
    const sequence = frame.readUInt32LE(4);
    if (sequence !== this.#receiveSequence) {
      throw malformed(`reference to file ${sequence} where file ${this.#receiveSequence} comes next`);
    }
    const path = frameFilePath(this.offer.dir, this.offer.channel, this.receives, sequence);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (error) {
      throw malformed(`${path} cannot be opened (${(error as NodeJS.ErrnoException).code})`);
    }
    try {
      const stats = fstatSync(fd);
      if (!stats.isFile()) throw malformed(`${path} is not a regular file`);
      if (stats.size > this.maxFrameBytes) {
        throw malformed(`${path} holds ${stats.size} bytes, more than a frame may (${this.maxFrameBytes})`);
      }
      // Not from Buffer's pool (large sizes never are): a tensor in the frame starts 8-byte aligned.
      const whole = Buffer.allocUnsafe(stats.size);
      for (let read = 0; read < whole.byteLength; ) {
        const got = readSync(fd, whole, read, whole.byteLength - read, read);
        if (got === 0) throw malformed(`${path} ended after ${read} of ${stats.size} bytes`);
        read += got;
      }
      this.#receiveSequence = (sequence + 1) >>> 0;
      return whole;
    } finally {
      closeSync(fd);
      rmSync(path, { force: true });
    }
  }
}

/** Creates the file at `path` (which must not exist) holding `frame`, readable by this user only. */
export function writeFrameFile(path: string, frame: Uint8Array): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    for (let written = 0; written < frame.byteLength; ) {
      written += writeSync(fd, frame, written, frame.byteLength - written);
    }
  } finally {
    closeSync(fd);
  }
}

function malformed(what: string): CallosumError {
  return new CallosumError(ErrorCodes.MALFORMED_MESSAGE, `frame file ${what}`);
}
