import type { CoordinatorEvent } from './events.js';
import type { TelemetrySink } from './telemetry.js';
import { CONNECTION_CLOSED, workerLabel } from './worker-label.js';

/** Refused connections are logged up to this many; the rest are only counted (a flood would drown the log). */
const LOGGED_REFUSALS = 20;

/** The worker an event is about, as the log names it. */
function workerOf(event: {
  worker: string;
  name?: string | undefined;
  address?: string | undefined;
}): string {
  return `worker ${workerLabel({ id: event.worker, name: event.name, address: event.address })}`;
}

/**
 * The run's events as log lines: each kind is formatted here and only here. Steps, evaluations,
 * checkpoints and the summary are left to the caller's progress display (onStep, onEvaluation, the
 * result), and rejected or discarded results to the dispatcher's own line, so they have none.
 *
 * The dashboard renders these lines too, so this file stays free of @callosum/core (a Node bundle): a
 * step index (0-based in events) is counted from 1 here as core's stepLabel counts it.
 */
export function eventLogLine(event: CoordinatorEvent): string | undefined {
  switch (event.type) {
    case 'resumed':
      return `resuming from ${event.checkpoint} after step ${event.step} of ${event.totalSteps}`;
    case 'auth-failure':
    case 'connection-refused':
      return `refused connection from ${event.peer} (${event.status}): ${event.reason}`;
    case 'worker-joined':
      return `${workerOf(event)} joined (backend ${event.backend}); ${event.healthy} healthy${event.syncing === undefined ? '' : `, ${event.syncing} getting the run's state`}`;
    case 'worker-left':
      return `${workerOf(event)} left${event.reason === CONNECTION_CLOSED ? '' : ` (${event.reason})`}`;
    case 'worker-recovered':
      return `${workerOf(event)} is responsive again`;
    case 'worker-failure':
      return `${workerOf(event)} reports ${event.code}: ${event.message}`;
    case 'rejected-message':
      return `${workerOf(event)}: ${event.code}: ${event.message}`;
    case 'straggler':
      return (
        `${workerOf(event)} is late: shard ${event.shard} pending ${Math.round(event.pendingMs)} ms ` +
        `(others took ${Math.round(event.typicalMs ?? Number.NaN)} ms) while ${event.phase}, ` +
        `last heard ${event.lastHeardMs} ms ago; redoing its shard elsewhere`
      );
    case 'late-peer':
      return (
        `${workerOf(event)} is late in the ring reduction of step ${event.step + 1}: ` +
        `${Math.round(event.pendingMs)} ms while ${event.phase} (last heard ${Math.round(event.lastHeardMs)} ms ago, ` +
        `${event.heartbeatPhase}); the step is redone without it`
      );
    case 'replica-diverged':
      return (
        `${workerOf(event)}: its replica differs from the others' at step ${event.step + 1} ` +
        `(digest ${event.digest.slice(0, 12)}…, others ${event.expected.slice(0, 12)}…); replacing it`
      );
    case 'reduction-redone':
      return `ring reduction of step ${event.step + 1}${event.attempt === 0 ? '' : ` (retry ${event.attempt})`} abandoned: ${event.reason}; redoing the step`;
    case 'eviction':
      return `evicting ${workerOf(event)}: ${event.reason}; its shards are redone`;
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
