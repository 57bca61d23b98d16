import type { CoordinatorEvent } from './events.js';

/** Something that observes every event of a run: the metrics file, later a Prometheus exporter or a dashboard. */
export type TelemetrySink = (event: CoordinatorEvent, time: Date) => void;

/**
 * The run's one event stream: each event is recorded once, here, and every sink sees it in the order
 * it was recorded.
 */
export class Telemetry {
  private readonly sinks = new Set<TelemetrySink>();

  /** Adds a sink; the returned function removes it. */
  subscribe(sink: TelemetrySink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  record(event: CoordinatorEvent): void {
    const time = new Date();
    for (const sink of this.sinks) sink(event, time);
  }
}
