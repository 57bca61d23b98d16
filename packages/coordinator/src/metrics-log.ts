import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';

/** Appends one JSON object per line: the run's machine-readable record (docs/observability in README). */
export class MetricsLog {
  private readonly stream: WriteStream;

  constructor(readonly path: string) {
    this.stream = createWriteStream(path, { flags: 'a' });
  }

  /** Appends a record; records arriving after close (a late socket event) are dropped. */
  write(record: Record<string, unknown>): void {
    if (this.stream.writableEnded) return;
    this.stream.write(`${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  }

  async close(): Promise<void> {
    this.stream.end();
    await once(this.stream, 'finish');
  }
}
