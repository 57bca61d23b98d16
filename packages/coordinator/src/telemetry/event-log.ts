import type { CoordinatorEvent } from './events.js';
import type { TelemetrySink } from './telemetry.js';

/** Refused connections are logged up to this many; the rest are only counted (a flood would drown the log). */
const LOGGED_REFUSALS = 20;

/** How a worker is named in the log: "w2 (worker-2, 127.0.0.1:5000)", or "w2 (127.0.0.1:5000)" before its hello. */
export function workerLabel(worker: {
  readonly id: string;
  readonly name: string;
  readonly address: string;
}): string {
  return `${worker.id}${worker.name ? ` (${worker.name}, ${worker.address})` : ` (${worker.address})`}`;
}

/**
 * The run's events as log lines: each kind is formatted here and only here. Steps, evaluations,
 * checkpoints and the summary are left to the caller's progress display (onStep, onEvaluation, the
 * result), so they have no line.
 */
export function eventLogLine(event: CoordinatorEvent): string | undefined {
  switch (event.type) {
    case 'resumed':
      return `resuming from ${event.checkpoint} at step ${event.step} of ${event.totalSteps}`;
    case 'auth-failure':
    case 'connection-refused':
      return `refused connection from ${event.peer} (${event.status}): ${event.reason}`;
    case 'worker-joined':
      return `worker ${workerLabel({ id: event.worker, ...event })} joined (backend ${event.backend}); ${event.healthy} healthy`;
    case 'worker-left':
      return `worker ${workerLabel({ id: event.worker, ...event })} left`;
    case 'worker-recovered':
      return `worker ${workerLabel({ id: event.worker, ...event })} is responsive again`;
    case 'worker-failure':
      return `worker ${workerLabel({ id: event.worker, ...event })} reports ${event.code}: ${event.message}`;
    case 'rejected-message':
      return `worker ${workerLabel({ id: event.worker, ...event })}: ${event.code}: ${event.message}`;
    case 'straggler':
      return (
        `worker ${workerLabel({ id: event.worker, ...event })} is late: shard ${event.shard} pending ` +
        `${Math.round(event.pendingMs)} ms (others took ${Math.round(event.typicalMs)} ms) while ${event.phase}, ` +
        `last heard ${event.lastHeardMs} ms ago; redoing its shard elsewhere`
      );
    case 'eviction':
      return `evicting worker ${workerLabel({ id: event.worker, ...event })}: ${event.reason}; its shards are redone`;
    default:
      return undefined;
  }
}

/** A telemetry sink that writes each event's log line, prefixed "coordinator: ". */
export function eventLog(log: (line: string) => void): TelemetrySink {
  let refusals = 0;
  return (event) => {
    if (event.type === 'auth-failure' || event.type === 'connection-refused') {
      refusals += 1;
      if (refusals > LOGGED_REFUSALS) return;
    }
    const line = eventLogLine(event);
    if (line !== undefined) log(`coordinator: ${line}`);
  };
}
