import type { Cancel, Clock } from '../dispatch/clock.js';

interface Pending {
  readonly at: number;
  readonly order: number;
  readonly callback: () => void;
}

/** A clock that moves only when a test says so; due callbacks run in time order, ties in order set. */
export class ManualClock implements Clock {
  private time = 0;
  private scheduled = 0;
  private readonly pending = new Set<Pending>();

  now(): number {
    return this.time;
  }

  after(ms: number, callback: () => void): Cancel {
    const entry = { at: this.time + Math.max(0, ms), order: this.scheduled++, callback };
    this.pending.add(entry);
    return () => this.pending.delete(entry);
  }

  /** Moves time forward by `ms`, running every callback that falls due on the way, at its time. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (let next = this.nextDue(until); next !== undefined; next = this.nextDue(until)) {
      this.pending.delete(next);
      this.time = next.at;
      next.callback();
    }
    this.time = until;
  }

  private nextDue(until: number): Pending | undefined {
    let first: Pending | undefined;
    for (const entry of this.pending) {
      if (entry.at > until) continue;
      if (
        first === undefined ||
        entry.at < first.at ||
        (entry.at === first.at && entry.order < first.order)
      ) {
        first = entry;
      }
    }
    return first;
  }
}
