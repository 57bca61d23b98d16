import {
  type CoordinatorMessage,
  createMsgpackCodec,
  DEFAULT_TRAINING_CONFIG,
  encodeCheckpoint,
  REPLICA_FORMAT_VERSION,
  TrainingState,
} from '@callosum/core';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../dispatch/clock.js';
import { ringConnection } from '../test-support/ring-connection.js';
import type { WorkerConnection } from '../workers/connection.js';
import { WorkerRegistry } from '../workers/registry.js';
import { ReplicaSync } from './replica-sync.js';

// The coordinator's copy of a ring run brought up to date from the workers' replicas: real connections
// whose sockets are stand-ins recording what was sent, a clock whose deadlines run only when the test
// says. A stopped ring worker whose replica is asked for, end to end, is in packages/cli/test/ring.test.ts.

const codec = createMsgpackCodec();
/** Lets the promises of answers already given run their callbacks. */
const settled = () => new Promise((resolve) => setImmediate(resolve));
const STEP = 3;
const config = { ...DEFAULT_TRAINING_CONFIG, epochs: 1 };

/** A run's state after STEP steps whose weights are all `value`, as a replica would send it. */
function replicaBytes(value: number): Uint8Array {
  const replica = new TrainingState(config, new Float32Array(4).fill(value), 1000);
  for (let step = 0; step < STEP; step++) replica.advanceWithoutApplying();
  return encodeCheckpoint(replica.checkpoint(), REPLICA_FORMAT_VERSION);
}

async function setup(ids: string[]) {
  const membership = new WorkerRegistry();
  const sent = new Map<string, CoordinatorMessage[]>();
  const workers: WorkerConnection[] = [];
  for (const [i, id] of ids.entries()) {
    const { worker, sent: messages } = ringConnection(id, i, membership);
    sent.set(id, messages);
    worker.holdsReplica(STEP);
    worker.synced();
    workers.push(worker);
    // Heard from in this order, a few milliseconds apart.
    worker.decode(Buffer.from(codec.encode({ type: 'heartbeat', phase: 'idle' })));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const deadlines: { ms: number; run: () => void; cancelled: boolean }[] = [];
  const clock: Clock = {
    now: () => 0,
    after: (ms, run) => {
      const deadline = { ms, run, cancelled: false };
      deadlines.push(deadline);
      return () => {
        deadline.cancelled = true;
      };
    },
  };
  /** Runs the pending deadlines of `ms` (the hedge, or the request's timeout). */
  const elapse = (ms: number) => {
    for (const deadline of deadlines.filter((pending) => pending.ms === ms && !pending.cancelled)) {
      deadline.cancelled = true;
      deadline.run();
    }
  };
  const state = new TrainingState(config, new Float32Array(4), 1000);
  const logged: string[] = [];
  const lost: Error[] = [];
  const sync = new ReplicaSync({
    state,
    membership,
    datasetSize: 1000,
    clock,
    timeoutMs: 60_000,
    hedgeMs: 2000,
    stateLost: (error) => lost.push(error),
    log: (line) => logged.push(line),
  });
  // The replicas applied STEP steps; this copy only counted them.
  for (let step = 0; step < STEP; step++) sync.advance();
  const asked = (worker: WorkerConnection) =>
    (sent.get(worker.id) ?? []).filter((message) => message.type === 'state-request').length;
  const answer = (worker: WorkerConnection, bytes: Uint8Array) =>
    sync.received(worker, { type: 'replica-state', version: STEP, state: bytes });
  return { sync, state, workers, membership, asked, answer, elapse, logged, lost };
}

describe('ReplicaSync.refresh', () => {
  it('asks the worker heard from last first, and no other while it answers in time', async () => {
    const { sync, state, workers, asked, answer } = await setup(['w1', 'w2']);
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    const refreshed = sync.refresh();
    expect([asked(w1), asked(w2)]).toEqual([0, 1]);
    answer(w2, replicaBytes(0.5));
    await refreshed;
    expect([...state.weights]).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(asked(w1)).toBe(0);
  });

  it('asks the next replica too once the first has not answered within the hedge, and takes the first usable answer', async () => {
    const { sync, state, workers, asked, answer, elapse } = await setup(['w1', 'w2', 'w3']);
    const [w1, w2, w3] = workers as [WorkerConnection, WorkerConnection, WorkerConnection];
    const refreshed = sync.refresh();
    // w3 was heard from last but does not answer (stopped, say): it alone is asked until the hedge.
    expect([asked(w3), asked(w2), asked(w1)]).toEqual([1, 0, 0]);
    elapse(2000);
    expect([asked(w3), asked(w2), asked(w1)]).toEqual([1, 1, 0]);
    answer(w2, replicaBytes(0.25));
    await refreshed;
    expect([...state.weights]).toEqual([0.25, 0.25, 0.25, 0.25]);
    // The stopped worker's answer, once it wakes, is discarded: the copy keeps w2's state.
    answer(w3, replicaBytes(0.75));
    expect([...state.weights]).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(asked(w1)).toBe(0);
  });

  it('has two requests under way at most: a slow replica costs one more transfer, not one per worker', async () => {
    const { sync, state, workers, asked, answer, elapse } = await setup(['w1', 'w2', 'w3']);
    const [w1, w2, w3] = workers as [WorkerConnection, WorkerConnection, WorkerConnection];
    const refreshed = sync.refresh();
    // A second caller (the saved model, say, while a checkpoint refreshes) waits for the same requests.
    const again = sync.refresh();
    expect([asked(w3), asked(w2), asked(w1)]).toEqual([1, 0, 0]);
    elapse(2000);
    elapse(2000);
    elapse(2000);
    expect([asked(w3), asked(w2), asked(w1)]).toEqual([1, 1, 0]);
    answer(w3, replicaBytes(0.5));
    await Promise.all([refreshed, again]);
    expect([...state.weights]).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(asked(w1)).toBe(0);
  });

  it('moves on at once from a replica whose state cannot be used, and fails only once every replica has', async () => {
    const { sync, state, workers, asked, answer, elapse, logged } = await setup(['w1', 'w2']);
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    const refreshed = sync.refresh();
    answer(w2, Uint8Array.of(1, 2, 3));
    await settled();
    expect(asked(w1)).toBe(1);
    expect(logged).toEqual([expect.stringMatching(/could not read the replica of worker .*w2/)]);
    // w1 never answers: its request times out, and with no replica left the refresh fails.
    const failed = expect(refreshed).rejects.toMatchObject({
      code: 'NO_WORKERS',
      message: `no worker could send its replica of step ${STEP}`,
    });
    elapse(2000);
    elapse(60_000);
    await failed;
    expect([...state.weights]).toEqual([0, 0, 0, 0]);
  });

  it('stops the run at once when the last worker holding the state leaves while this copy is behind it', async () => {
    const { sync, workers, membership, lost } = await setup(['w1', 'w2']);
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    membership.remove(w1);
    await settled();
    expect(lost).toEqual([]);
    membership.remove(w2);
    await settled();
    const stateGone = {
      code: 'NO_WORKERS',
      message: expect.stringMatching(/every worker holding the run's state after step 3 has left/),
    };
    expect(lost).toEqual([expect.objectContaining(stateGone)]);
    // Workers that join later are not waited for: the step after is refused before it starts.
    await expect(sync.admitWaiting()).rejects.toMatchObject(stateGone);
  });
});
