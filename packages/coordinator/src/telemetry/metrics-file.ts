import {
  closeSync,
  createWriteStream,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  statSync,
  type WriteStream,
} from 'node:fs';
import { finished } from 'node:stream/promises';
import { writeFailure } from '@callosum/core';
import { type CoordinatorEvent, recordedEvent } from './events.js';
import { FirstWriteFailure, type RecordFileOptions } from './record-file.js';

/**
 * Appends one JSON object per event: the run's machine-readable record (docs/observability in README).
 *
 * A resumed run appends to the file its earlier coordinators wrote. One stopped in the middle of a write
 * (a full disk, `kill -9`, a power loss) left its last line without its newline: that line is cut off
 * when the file is opened, and the log says so, because a line appended to it would make both unreadable
 * (`callosum report` refuses the file).
 */
export class MetricsFile {
  private readonly stream: WriteStream;
  private readonly failures: FirstWriteFailure;
  /** Settles once the latest line written is in the file, or the write failed. */
  #written: Promise<void> = Promise.resolve();

  /** Opens the file now, so a path that cannot be written fails the start of the run. */
  constructor(
    readonly path: string,
    options: RecordFileOptions,
  ) {
    let fd: number;
    try {
      const cut = cutUnfinishedLine(path);
      if (cut > 0) {
        options.log(
          `coordinator: ${path} ended in an unfinished line (${cut} bytes of a write cut short); ` +
            'removed it before appending',
        );
      }
      fd = openSync(path, 'a');
    } catch (error) {
      throw writeFailure(path, error);
    }
    this.stream = createWriteStream(path, { fd });
    this.failures = new FirstWriteFailure(path, options.onWriteFailed);
    this.stream.on('error', (error) => this.failures.record(error));
  }

  /** A telemetry sink; events arriving after close (a late socket event) or a failed write are dropped. */
  readonly write = (event: CoordinatorEvent, time: Date): void => {
    if (this.failures.failure !== undefined || this.stream.writableEnded) return;
    this.#written = new Promise((resolve) =>
      this.stream.write(`${JSON.stringify(recordedEvent(event, time))}\n`, (error) => {
        if (error) this.failures.record(error);
        resolve();
      }),
    );
  };

  /**
   * Resolves once every line written so far is in the file; rejects with the failure (WRITE_FAILED) if a
   * write failed. A run awaits it as it starts, so a file it cannot append to fails the start.
   */
  async flushed(): Promise<void> {
    await this.#written;
    if (this.failures.failure !== undefined) throw this.failures.failure;
  }

  /** Flushes and closes the file; a write failing now is reported like any other (onWriteFailed). */
  async close(): Promise<void> {
    if (this.failures.failure !== undefined) return;
    this.stream.end();
    await finished(this.stream).catch(() => undefined);
  }
}

/** How much of the end of a file is read at a time, looking for its last newline. */
const TAIL_CHUNK_BYTES = 64 * 1024;

/**
 * Cuts off a last line that has no newline (a write cut short) from the file at `path`; returns how many
 * bytes it removed. A missing file, or one that is not a regular file (a device), is left as it is.
 */
export function cutUnfinishedLine(path: string): number {
  // Looked at before it is opened: opening a named pipe read-write would make this process its writer.
  const found = statSync(path, { throwIfNoEntry: false });
  if (found === undefined || !found.isFile() || found.size === 0) return 0;
  const fd = openSync(path, 'r+');
  try {
    const stats = fstatSync(fd);
    const chunk = Buffer.alloc(TAIL_CHUNK_BYTES);
    let end = stats.size;
    let keep = 0;
    while (end > 0) {
      const start = Math.max(0, end - TAIL_CHUNK_BYTES);
      const length = readSync(fd, chunk, 0, end - start, start);
      const newline = chunk.subarray(0, length).lastIndexOf(0x0a);
      if (newline !== -1) {
        keep = start + newline + 1;
        break;
      }
      end = start;
    }
    if (keep === stats.size) return 0;
    ftruncateSync(fd, keep);
    return stats.size - keep;
  } finally {
    closeSync(fd);
  }
}
