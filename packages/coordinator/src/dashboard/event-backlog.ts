import type { CoordinatorEventType, RecordedEvent } from '../telemetry/events.js';

/** The latest steps, kept whole: the timeline and the worker table read their per-worker split. */
const RECENT_STEPS = 200;
/**
 * Older steps, for the charts: at most this many, thinned to every 2nd, 4th, 8th … step as the run
 * grows (so they stay evenly spread), and kept without their per-worker split.
 */
const OLDER_STEPS = 1_000;
/** Events a peer can cause at will (refused connections, rejected or discarded messages): the latest ones. */
const PEER_EVENTS = 200;
/** Every other event (membership, stragglers, evictions, checkpoints, evaluations, the end): the latest ones. */
const NOTABLE_EVENTS = 5_000;

const PEER_EVENT_TYPES: ReadonlySet<CoordinatorEventType> = new Set([
  'auth-failure',
  'connection-refused',
  'rejected-message',
  'rejected-gradient',
  'rejected-evaluation',
  'discarded-message',
]);

interface Entry {
  /** Position in the run's order of events. */
  readonly seq: number;
  readonly event: RecordedEvent;
}

/**
 * What a dashboard that connects mid-run is shown of the run so far, and what a report of a finished
 * run holds: its events in the order they were recorded, bounded however long the run is.
 */
export class EventBacklog {
  private seq = 0;
  /** Older steps kept are those whose number is a multiple of this. */
  private stride = 1;
  private readonly recent: Entry[] = [];
  private older: (Entry & { readonly step: number })[] = [];
  private readonly peerEvents: Entry[] = [];
  private readonly notable: Entry[] = [];

  add(event: RecordedEvent): void {
    const entry = { seq: this.seq++, event };
    if (event.type === 'step') {
      this.recent.push(entry);
      const aged = this.recent.length > RECENT_STEPS ? this.recent.shift() : undefined;
      if (aged !== undefined) this.keepOlder(aged);
    } else if (PEER_EVENT_TYPES.has(event.type)) {
      keepLatest(this.peerEvents, entry, PEER_EVENTS);
    } else {
      keepLatest(this.notable, entry, NOTABLE_EVENTS);
    }
  }

  /** The events kept, in the order they were recorded. */
  events(): RecordedEvent[] {
    return [...this.older, ...this.recent, ...this.peerEvents, ...this.notable]
      .sort((a, b) => a.seq - b.seq)
      .map((entry) => entry.event);
  }

  private keepOlder({ seq, event }: Entry): void {
    if (event.type !== 'step' || event.step % this.stride !== 0) return;
    this.older.push({ seq, step: event.step, event: { ...event, perWorker: [] } });
    if (this.older.length > OLDER_STEPS) {
      this.stride *= 2;
      this.older = this.older.filter((entry) => entry.step % this.stride === 0);
    }
  }
}

function keepLatest(entries: Entry[], entry: Entry, limit: number): void {
  entries.push(entry);
  if (entries.length > limit) entries.shift();
}
