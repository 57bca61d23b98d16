import type { RecordedEvent } from '../src/telemetry/events.js';
import type { Connection } from './run-header.js';
import { RunModel } from './run-model.js';

/**
 * Follows the coordinator that served the page (GET /events, with the page's query, which may carry its
 * token): each (re)connection starts a new model from the backlog; `show` is called once per frame at most.
 */
export function followLive(show: (model: RunModel, connection: Connection) => void): void {
  let model = new RunModel();
  let connection: Connection = 'reconnecting';
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      show(model, connection);
    });
  };
  schedule();
  const source = new EventSource(`events${location.search}`);
  source.onopen = () => {
    model = new RunModel();
    connection = 'live';
    schedule();
  };
  source.onmessage = (message: MessageEvent<string>) => {
    model.apply(JSON.parse(message.data) as RecordedEvent);
    // The run is complete: nothing more will come. (A stopped run may be resumed on the same port,
    // which the retries pick up.)
    if (model.outcome.kind === 'finished') {
      source.close();
      connection = 'disconnected';
    }
    schedule();
  };
  source.onerror = () => {
    connection = source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting';
    schedule();
  };
}
