import type { TrainingState } from '@callosum/core';
import { systemClock } from '../dispatch/clock.js';
import type { CoordinatorSettings } from '../settings.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { WorkerRegistry } from '../workers/registry.js';
import type { RingHandlers } from '../workers/worker-pool.js';
import { ReplicaSync } from './replica-sync.js';
import { RingPath } from './ring-path.js';
import { RingReduction } from './ring-reduction.js';

export interface RingContext {
  readonly state: TrainingState;
  readonly membership: WorkerRegistry;
  readonly telemetry: Telemetry;
  readonly settings: CoordinatorSettings;
  /** The training set's size, which a replica needs for the run's length and schedule. */
  readonly datasetSize: number;
  /** The replicas' state is gone (ReplicaSyncContext.stateLost): stops the run with `error`. */
  readonly stateLost: (error: Error) => void;
  readonly log: (line: string) => void;
}

/** The coordinator's side of a ring run, wired together: its gradient path and its workers' handlers. */
export function startRing(context: RingContext): {
  readonly path: RingPath;
  readonly replicas: ReplicaSync;
  readonly reduction: RingReduction;
  readonly handlers: RingHandlers;
} {
  const { state, membership, telemetry, settings, datasetSize, stateLost, log } = context;
  const clock = systemClock;
  const replicas = new ReplicaSync({
    state,
    membership,
    datasetSize,
    clock,
    timeoutMs: settings.shardDeadlineMs,
    // An idle worker heartbeats every interval: two without an answer, and another replica is asked.
    hedgeMs: 2 * settings.heartbeatIntervalMs,
    stateLost,
    log,
  });
  const reduction = new RingReduction({ membership, telemetry, clock, settings });
  return {
    path: new RingPath(replicas, reduction),
    replicas,
    reduction,
    handlers: {
      listening: () => replicas.listening(),
      reduced: (worker, message) => reduction.reduced(worker, message),
      replicaState: (worker, message) => replicas.received(worker, message),
      failure: (worker, message) => reduction.failed(worker, message),
      abandoned: (message) => reduction.isAbandoned(message),
    },
  };
}
