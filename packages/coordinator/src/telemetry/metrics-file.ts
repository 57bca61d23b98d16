import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { type CoordinatorEvent, recordedEvent } from './events.js';

/** Appends one JSON object per event: the run's machine-readable record (docs/observability in README). */
export class MetricsFile {
  private readonly stream: WriteStream;

  constructor(readonly path: string) {
    this.stream = createWriteStream(path, { flags: 'a' });
  }

  /** A telemetry sink; events arriving after close (a late socket event) are dropped. */
  readonly write = (event: CoordinatorEvent, time: Date): void => {
    if (this.stream.writableEnded) return;
    this.stream.write(`${JSON.stringify(recordedEvent(event, time))}\n`);
  };

  async close(): Promise<void> {
    this.stream.end();
    await once(this.stream, 'finish');
  }
}
