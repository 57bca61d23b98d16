import type { IncomingMessage, ServerResponse } from 'node:http';
import { type RecordedEvent, recordedEvent } from '../telemetry/events.js';
import type { TelemetrySink } from '../telemetry/telemetry.js';
import { EventBacklog } from './event-backlog.js';

/** Bytes that may wait unsent for one dashboard; beyond that it is cut off, and reconnects to the backlog. */
const MAX_PENDING_BYTES = 4 * 1024 * 1024;
/** How soon a browser reconnects after its stream ended (e.g. a coordinator resumed on the same port). */
const RECONNECT_MS = 1_000;

function message(event: RecordedEvent): string {
  return `data: ${JSON.stringify(event)}\n\n`;
}

/**
 * The run's events for dashboards, as Server-Sent Events: a telemetry sink that keeps a bounded
 * backlog (event-backlog.ts); each browser is sent the backlog first, then every event as it is recorded.
 */
export class DashboardFeed {
  private readonly backlog = new EventBacklog();
  private readonly streams = new Set<ServerResponse>();

  readonly record: TelemetrySink = (event, time) => {
    const recorded = recordedEvent(event, time);
    this.backlog.add(recorded);
    if (this.streams.size === 0) return;
    const text = message(recorded);
    for (const stream of this.streams) {
      if (stream.writableLength > MAX_PENDING_BYTES) stream.destroy();
      else stream.write(text);
    }
  };

  /**
   * Answers GET /events: the backlog, then the live events until the browser goes or the run ends. HEAD
   * gets the same headers and ends there (a stream kept open for it would never answer `curl -I`).
   */
  serve(request: IncomingMessage, response: ServerResponse): void {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    if (request.method === 'HEAD') {
      response.end();
      return;
    }
    response.write(`retry: ${RECONNECT_MS}\n\n${this.backlog.events().map(message).join('')}`);
    this.streams.add(response);
    response.once('close', () => this.streams.delete(response));
  }

  /** Ends every stream, so that what was written reaches the browsers before the server closes. */
  close(): void {
    for (const stream of this.streams) stream.end();
    this.streams.clear();
  }
}
