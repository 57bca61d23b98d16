import { eventLogLine } from '../src/telemetry/event-log.js';
import type { CoordinatorEvent, RecordedEvent } from '../src/telemetry/events.js';

type StepEvent = Extract<CoordinatorEvent, { type: 'step' }>;
type EvaluationEvent = Extract<CoordinatorEvent, { type: 'evaluation' }>;

/** Steps the timeline shows. */
export const TIMELINE_STEPS = 40;
/** Entries the event log keeps. */
const LOG_ENTRIES = 500;

export interface WorkerRow {
  readonly id: string;
  name: string;
  address: string;
  backend: string;
  state: 'healthy' | 'suspect' | 'gone';
  /** Its share of the last step it computed in. */
  lastStep: StepEvent['perWorker'][number] | undefined;
  /** Times it was named late (a straggler). */
  late: number;
  evicted: boolean;
}

export interface LogEntry {
  readonly time: string;
  /** What the entry is about, for its colour: the event's type, or `redone` for redone shards. */
  readonly kind: CoordinatorEvent['type'] | 'redone';
  readonly text: string;
}

/** Where the run is: training, or over (and how). */
export type RunOutcome =
  | { readonly kind: 'running' }
  | { readonly kind: 'finished' }
  | { readonly kind: 'stopped'; readonly reason: string };

/**
 * A run as the dashboard shows it, built from its recorded events one at a time, in order: the same
 * events whether they arrive live (GET /events) or come from metrics.jsonl (a report).
 */
export class RunModel {
  readonly #steps: StepEvent[] = [];
  readonly #evaluations: EvaluationEvent[] = [];
  readonly #workers = new Map<string, WorkerRow>();
  readonly #log: LogEntry[] = [];
  #outcome: RunOutcome = { kind: 'running' };
  #redoneShards = 0;

  /** Every step recorded (older ones thinned by the backlog), in order. */
  get steps(): readonly StepEvent[] {
    return this.#steps;
  }
  get evaluations(): readonly EvaluationEvent[] {
    return this.#evaluations;
  }
  /** Every worker that joined, in join order, including those that are gone. */
  get workers(): readonly WorkerRow[] {
    return [...this.#workers.values()];
  }
  /** The latest steps with their per-worker split, for the timeline. */
  get recentSteps(): readonly StepEvent[] {
    return this.#steps.filter((step) => step.perWorker.length > 0).slice(-TIMELINE_STEPS);
  }
  /** Newest last. */
  get log(): readonly LogEntry[] {
    return this.#log;
  }
  get outcome(): RunOutcome {
    return this.#outcome;
  }
  get lastStep(): StepEvent | undefined {
    return this.#steps.at(-1);
  }

  apply(event: RecordedEvent): void {
    switch (event.type) {
      case 'step':
        this.step(event);
        return;
      case 'evaluation':
        this.#evaluations.push(event);
        this.note(
          event,
          `epoch ${event.epoch + 1}: ${event.testAccuracy === null ? '' : `test accuracy ${percent(event.testAccuracy)}, `}test loss ${(event.testLoss ?? Number.NaN).toFixed(4)}`,
        );
        return;
      case 'resumed':
        // A resumed run repeats the steps after its checkpoint, with new workers (ids start again).
        this.rewind(event.step);
        this.#workers.clear();
        this.#redoneShards = 0;
        this.#outcome = { kind: 'running' };
        break;
      case 'worker-joined':
        this.#workers.set(event.worker, {
          id: event.worker,
          name: event.name,
          address: event.address ?? '',
          backend: event.backend,
          state: 'healthy',
          lastStep: undefined,
          late: 0,
          evicted: false,
        });
        break;
      case 'worker-left':
        this.update(event.worker, (row) => {
          row.state = 'gone';
        });
        break;
      case 'worker-recovered':
        this.update(event.worker, (row) => {
          row.state = 'healthy';
        });
        break;
      case 'straggler':
      case 'late-peer':
        this.update(event.worker, (row) => {
          row.state = 'suspect';
          row.late += 1;
        });
        break;
      case 'eviction':
        this.update(event.worker, (row) => {
          row.evicted = true;
          row.state = 'gone';
        });
        break;
      case 'checkpoint':
        this.note(event, `checkpoint at step ${event.step}: ${event.path}`);
        return;
      case 'stopped':
        this.#outcome = { kind: 'stopped', reason: `${event.code}: ${event.reason}` };
        this.note(event, `run stopped at step ${event.step}: ${event.code}: ${event.reason}`);
        return;
      case 'summary':
        this.#outcome = { kind: 'finished' };
        this.note(event, `run complete: ${event.steps} steps in ${event.seconds.toFixed(1)} s`);
        return;
    }
    const line = eventLogLine(event);
    if (line !== undefined) this.note(event, line);
  }

  private step(event: RecordedEvent & StepEvent): void {
    const last = this.#steps.at(-1);
    if (last !== undefined && event.step <= last.step) this.rewind(event.step - 1);
    this.#steps.push(event);
    for (const share of event.perWorker) {
      const row = this.#workers.get(share.id);
      if (row !== undefined) row.lastStep = share;
    }
    if (event.redoneShards > this.#redoneShards) {
      const redone = event.redoneShards - this.#redoneShards;
      this.note(
        { ...event, type: 'redone' },
        `step ${event.step}: ${redone} shard${redone === 1 ? '' : 's'} redone`,
      );
    }
    this.#redoneShards = event.redoneShards;
  }

  /** Forgets what was recorded after `step`. */
  private rewind(step: number): void {
    const keep = (entry: { step: number }) => entry.step <= step;
    this.#steps.splice(0, this.#steps.length, ...this.#steps.filter(keep));
    this.#evaluations.splice(0, this.#evaluations.length, ...this.#evaluations.filter(keep));
  }

  private update(worker: string, change: (row: WorkerRow) => void): void {
    const row = this.#workers.get(worker);
    if (row !== undefined) change(row);
  }

  private note(event: { time: string; type: LogEntry['kind'] }, text: string): void {
    this.#log.push({ time: event.time, kind: event.type, text });
    if (this.#log.length > LOG_ENTRIES) this.#log.shift();
  }
}

export function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(2)} %`;
}
