import { closeSync, createWriteStream, openSync, type WriteStream, writeSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import { writeFailure } from '@callosum/core';
import type { CoordinatorEvent } from './events.js';
import { FirstWriteFailure, type RecordFileOptions } from './record-file.js';
import type { TelemetrySink } from './telemetry.js';

type StepEvent = Extract<CoordinatorEvent, { type: 'step' }>;
/** One event of the Trace Event Format (what chrome://tracing and Perfetto open). */
interface TraceEvent {
  readonly name: string;
  readonly ph: 'X' | 'M';
  readonly pid: number;
  readonly tid: number;
  readonly ts?: number;
  readonly dur?: number;
  readonly cat?: string;
  readonly args?: Record<string, unknown>;
}

const PID = 1;
const COORDINATOR_TID = 0;

/**
 * A timeline of every step in the Trace Event Format (`--trace FILE`): one track for the coordinator
 * (prepare, broadcast, reduce, optimizer, evaluation) and one per worker (receive, compute, send,
 * wait). Events are streamed as they come and the JSON is closed when the run releases it, on a
 * finish or a stop alike. An event is recorded as what it describes ends, so its start is now minus
 * its duration; the wire time of a shard is measured as a round trip, and split evenly between the
 * request (receive) and the gradient (send). A resumed run writes its trace anew, so an unfinished one
 * of an earlier coordinator is never appended to.
 */
export class TraceFile {
  private readonly stream: WriteStream;
  private readonly workerThreads = new Map<string, number>();
  private written = 0;
  private readonly failures: FirstWriteFailure;

  /**
   * Opens (truncates) the file and writes its start now, so a path that cannot be written (a full disk)
   * fails the start of the run; a later write that fails stops it (`onWriteFailed`).
   */
  constructor(
    readonly path: string,
    options: Pick<RecordFileOptions, 'onWriteFailed'>,
  ) {
    let fd: number | undefined;
    try {
      fd = openSync(path, 'w');
      writeSync(fd, '{"displayTimeUnit":"ms","traceEvents":[\n');
    } catch (error) {
      if (fd !== undefined) closeSync(fd);
      throw writeFailure(path, error);
    }
    this.stream = createWriteStream(path, { fd });
    this.failures = new FirstWriteFailure(path, options.onWriteFailed);
    this.stream.on('error', (error) => this.failures.record(error));
    this.emit({ name: 'process_name', ph: 'M', pid: PID, tid: 0, args: { name: 'callosum run' } });
    this.nameThread(COORDINATOR_TID, 'coordinator');
  }

  readonly sink: TelemetrySink = (event) => {
    if (this.failures.failure !== undefined || this.stream.writableEnded) return;
    const nowUs = performance.now() * 1000;
    switch (event.type) {
      case 'worker-joined':
        this.workerThread(event.worker, `worker ${event.worker} (${event.name})`);
        break;
      // This version always records the timings (the schema allows older lines without them).
      case 'step':
        if (event.timeline !== undefined) this.step(event, event.timeline, nowUs);
        break;
      case 'evaluation':
        if (event.evaluationMs === undefined) break;
        this.span(COORDINATOR_TID, 'evaluation', nowUs - event.evaluationMs * 1000, event.evaluationMs, {
          epoch: event.epoch,
          step: event.step,
        });
        break;
    }
  };

  /** Ends the JSON and closes the file; a write failing now is reported like any other (onWriteFailed). */
  async close(): Promise<void> {
    if (this.failures.failure !== undefined) return;
    this.stream.end('\n]}\n');
    await finished(this.stream).catch(() => undefined);
  }

  private step(event: StepEvent, timeline: NonNullable<StepEvent['timeline']>, endUs: number): void {
    const { stepMs, updateMs } = event;
    const startUs = endUs - stepMs * 1000;
    const at = (ms: number) => startUs + ms * 1000;
    const args = { step: event.step };
    const collectedMs = stepMs - updateMs;
    this.span(COORDINATOR_TID, `step ${event.step}`, startUs, stepMs, args);
    this.span(COORDINATOR_TID, 'prepare', startUs, timeline.prepareMs, args);
    this.span(COORDINATOR_TID, 'broadcast', at(timeline.prepareMs), timeline.broadcastMs, args);
    this.span(COORDINATOR_TID, 'reduce', at(collectedMs), timeline.reduceMs, args);
    this.span(COORDINATOR_TID, 'optimizer', at(collectedMs + timeline.reduceMs), timeline.optimizerMs, args);
    for (const timings of event.perWorker) {
      const spans = timeline.workers.find((worker) => worker.id === timings.id);
      if (spans === undefined) continue;
      const tid = this.workerThread(timings.id, `worker ${timings.id}`);
      const wireMs = timings.transferMs / 2;
      this.span(tid, 'receive', at(spans.sentMs), wireMs, args);
      this.span(tid, 'compute', at(spans.sentMs + wireMs), timings.computeMs, args);
      this.span(tid, 'send', at(spans.receivedMs - wireMs), wireMs, args);
      this.span(tid, 'wait', at(spans.receivedMs), timings.waitMs, args);
    }
  }

  /** The worker's track, named when it is first seen. */
  private workerThread(id: string, name: string): number {
    const known = this.workerThreads.get(id);
    if (known !== undefined) return known;
    const tid = this.workerThreads.size + 1;
    this.workerThreads.set(id, tid);
    this.nameThread(tid, name);
    return tid;
  }

  private nameThread(tid: number, name: string): void {
    this.emit({ name: 'thread_name', ph: 'M', pid: PID, tid, args: { name } });
    this.emit({ name: 'thread_sort_index', ph: 'M', pid: PID, tid, args: { sort_index: tid } });
  }

  private span(
    tid: number,
    name: string,
    startUs: number,
    durationMs: number,
    args: Record<string, unknown>,
  ) {
    const cat = tid === COORDINATOR_TID ? 'coordinator' : 'worker';
    this.emit({ name, cat, ph: 'X', pid: PID, tid, ts: startUs, dur: durationMs * 1000, args });
  }

  private emit(event: TraceEvent): void {
    this.stream.write(`${this.written++ === 0 ? '' : ',\n'}${JSON.stringify(event)}`);
  }
}
