import { type CallosumError, writeFailure } from '@callosum/core';

/** What a file the run streams its record into (metrics.jsonl, the trace) needs from the run. */
export interface RecordFileOptions {
  readonly log: (line: string) => void;
  /**
   * Called once, with WRITE_FAILED naming the file and the system's reason, when a write to it fails (a
   * full disk): the run stops with it (RunLifecycle.writeFailed). Later events are dropped.
   */
  readonly onWriteFailed: (error: CallosumError) => void;
}

/**
 * The first failed write to a record file, reported once (a stream reports a failed write to the
 * write's callback and again as its 'error'); later failures are the same full disk and are ignored.
 */
export class FirstWriteFailure {
  #failure: CallosumError | undefined;

  constructor(
    private readonly path: string,
    private readonly report: RecordFileOptions['onWriteFailed'],
  ) {}

  /** WRITE_FAILED for the first failed write, once one happened. */
  get failure(): CallosumError | undefined {
    return this.#failure;
  }

  record(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = writeFailure(this.path, error);
    this.report(this.#failure);
  }
}
