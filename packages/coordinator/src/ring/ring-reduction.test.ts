import { type CoordinatorMessage, createMsgpackCodec, type StepPlan } from '@callosum/core';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../dispatch/clock.js';
import type { ShardOutcome } from '../dispatch/shard-dispatcher.js';
import { StepRedo } from '../run/gradient-path.js';
import type { CoordinatorEvent } from '../telemetry/events.js';
import { ringConnection } from '../test-support/ring-connection.js';
import type { WorkerConnection } from '../workers/connection.js';
import { WorkerRegistry } from '../workers/registry.js';
import { RingReduction } from './ring-reduction.js';

// The coordinator's side of a ring reduction started with the step's requests: real connections whose
// sockets are stand-ins recording what was sent, a clock whose deadlines never fire by themselves.
// Real worker processes reducing among themselves are in packages/cli/test/ring.test.ts.

const codec = createMsgpackCodec();
const plan: StepPlan = {
  samples: 8,
  shards: [
    { start: 0, end: 4, part: 0 },
    { start: 4, end: 8, part: 1 },
  ],
} as StepPlan;

function setup() {
  const membership = new WorkerRegistry();
  const sent = new Map<string, CoordinatorMessage[]>();
  const workers = ['w1', 'w2', 'w3'].map((id, i) => {
    const { worker, sent: messages } = ringConnection(id, i, membership);
    sent.set(id, messages);
    worker.synced();
    return worker;
  });
  // Deadlines are kept, to be run by the test (`deadlinesPass`), never by themselves.
  const deadlines: { run: () => void; cancelled: boolean }[] = [];
  const clock: Clock = {
    now: () => 0,
    after: (_ms, run) => {
      const deadline = { run, cancelled: false };
      deadlines.push(deadline);
      return () => {
        deadline.cancelled = true;
      };
    },
  };
  const deadlinesPass = () => {
    for (const deadline of deadlines.splice(0)) if (!deadline.cancelled) deadline.run();
  };
  const events: CoordinatorEvent[] = [];
  const reduction = new RingReduction({
    membership,
    telemetry: { record: (event: CoordinatorEvent) => events.push(event) } as never,
    clock,
    settings: {
      stragglerFactor: 3,
      stragglerFloorMs: 1000,
      shardDeadlineMs: 60_000,
      replicaCheckEverySteps: 1000,
    },
  });
  const [w1, w2, w3] = workers as [WorkerConnection, WorkerConnection, WorkerConnection];
  /** The messages of `type` sent to `worker` so far. */
  const of = (worker: WorkerConnection, type: CoordinatorMessage['type']) =>
    (sent.get(worker.id) ?? []).filter((message) => message.type === type);
  /** The attempt numbers of the `reduce` requests sent to `worker` so far. */
  const attemptsSentTo = (worker: WorkerConnection) =>
    of(worker, 'reduce').map((message) => message.type === 'reduce' && message.attempt);
  const outcomes = (...holders: WorkerConnection[]) =>
    holders.map((worker) => ({
      worker,
      result: {},
      startedAt: 0,
      receivedAt: 0,
      sends: 1,
    })) as ShardOutcome<unknown>[];
  const reduced = (worker: WorkerConnection, step: number, attempt: number) =>
    reduction.reduced(worker, { type: 'reduced', step, attempt, peerBytes: 10, reduceMs: 1 });
  /** `worker` sends a heartbeat now. */
  const heartbeat = (worker: WorkerConnection) =>
    worker.decode(Buffer.from(codec.encode({ type: 'heartbeat', phase: 'reducing' })));
  return { reduction, w1, w2, w3, of, attemptsSentTo, outcomes, reduced, events, deadlinesPass, heartbeat };
}

describe('RingReduction, started as the step is sent', () => {
  it('applies only once the shards came from the workers it was started with, even if every peer reduced before', async () => {
    const { reduction, w1, w2, w3, of, outcomes, reduced } = setup();
    reduction.announce(7, plan, [w1, w2]);
    // Every healthy worker takes part, holding a shard or not, and learns the plan at once.
    for (const worker of [w1, w2, w3]) {
      expect(of(worker, 'reduce')).toEqual([
        expect.objectContaining({
          step: 7,
          attempt: 0,
          shards: [expect.objectContaining({ holder: 0 }), expect.objectContaining({ holder: 1 })],
        }),
      ]);
    }
    for (const worker of [w1, w2, w3]) reduced(worker, 7, 0);
    expect(of(w1, 'apply')).toEqual([]);
    expect(reduction.waitingFor).toBeUndefined();
    await reduction.run(7, plan, outcomes(w1, w2));
    for (const worker of [w1, w2, w3])
      expect(of(worker, 'apply')).toEqual([{ type: 'apply', step: 7, attempt: 0 }]);
  });

  it('starts another attempt when a shard was answered by another worker, and ignores the first one', async () => {
    const { reduction, w1, w2, w3, of, attemptsSentTo, outcomes, reduced } = setup();
    reduction.announce(3, plan, [w1, w2]);
    reduced(w1, 3, 0);
    // w2 was late with shard 1, which w3 computed instead.
    const running = reduction.run(3, plan, outcomes(w1, w3));
    expect(attemptsSentTo(w1)).toEqual([0, 1]);
    const second = of(w1, 'reduce')[1];
    expect(second?.type === 'reduce' && second.shards.map((shard) => shard.holder)).toEqual([0, 2]);
    for (const worker of [w1, w2, w3]) reduced(worker, 3, 0);
    expect(of(w1, 'apply')).toEqual([]);
    expect(reduction.waitingFor).toEqual({ step: 3, attempt: 1, workers: ['w1', 'w2', 'w3'] });
    for (const worker of [w1, w2, w3]) reduced(worker, 3, 1);
    await running;
    expect(of(w3, 'apply')).toEqual([{ type: 'apply', step: 3, attempt: 1 }]);
  });

  it('starts another attempt when a shard was sent again, even to the worker that held it (which dropped the first on its new request)', async () => {
    const { reduction, w1, w2, w3, of, attemptsSentTo, outcomes, reduced } = setup();
    reduction.announce(4, plan, [w1, w2]);
    const [first, second] = outcomes(w1, w2) as [ShardOutcome<unknown>, ShardOutcome<unknown>];
    const running = reduction.run(4, plan, [first, { ...second, sends: 2 }]);
    expect(attemptsSentTo(w2)).toEqual([0, 1]);
    for (const worker of [w1, w2, w3]) reduced(worker, 4, 1);
    await running;
    expect(of(w2, 'apply')).toEqual([{ type: 'apply', step: 4, attempt: 1 }]);
  });

  it('starts another attempt when a worker that was to take part is set aside before the shards are in', async () => {
    const { reduction, w1, w2, w3, of, outcomes, reduced } = setup();
    reduction.announce(6, plan, [w1, w2]);
    w3.suspected();
    const running = reduction.run(6, plan, outcomes(w1, w2));
    const again = of(w1, 'reduce')[1];
    expect(again?.type === 'reduce' && [again.attempt, again.peers.map((peer) => peer.workerId)]).toEqual([
      1,
      ['w1', 'w2'],
    ]);
    for (const worker of [w1, w2]) reduced(worker, 6, 1);
    await running;
    expect(of(w1, 'apply')).toEqual([{ type: 'apply', step: 6, attempt: 1 }]);
    expect(of(w3, 'apply')).toEqual([]);
  });

  it('a peer failing before the shards are in costs a new attempt, not the step; after, the step is redone', async () => {
    const { reduction, w1, w2, w3, of, attemptsSentTo, outcomes, reduced } = setup();
    reduction.announce(5, plan, [w1, w2]);
    const failure = { type: 'failure', code: 'PEER_LOST', message: 'lost the link', step: 5 } as const;
    reduction.failed(w3, failure);
    const running = reduction.run(5, plan, outcomes(w1, w2));
    expect(attemptsSentTo(w2)).toEqual([0, 1]);
    reduction.failed(w3, failure);
    await expect(running).rejects.toBeInstanceOf(StepRedo);
    // The redone step's reductions go on counting, so that peers drop what is left of the others.
    reduction.announce(5, plan, [w1, w2]);
    expect(attemptsSentTo(w1)).toEqual([0, 1, 2]);
    for (const worker of [w1, w2, w3]) reduced(worker, 5, 2);
    await reduction.run(5, plan, outcomes(w1, w2));
    expect(of(w1, 'apply')).toEqual([{ type: 'apply', step: 5, attempt: 2 }]);
  });

  it('tells a failure of an attempt no longer under way (1.11) from one of the attempt under way', async () => {
    const { reduction, w1, w2, w3, of, attemptsSentTo, outcomes, reduced } = setup();
    reduction.announce(8, plan, [w1, w2]);
    const stale = {
      type: 'failure',
      code: 'STALE_MESSAGE',
      message: 'this worker holds no gradient of shard 1',
      step: 8,
      attempt: 0,
    } as const;
    expect(reduction.isAbandoned(stale)).toBe(false);
    // w2's compute fails: that gives up the attempt announced with the step's requests...
    reduction.failed(w2, { type: 'failure', code: 'COMPUTE_FAILED', message: 'lost', step: 8, shard: 1 });
    // ...so its failure of that attempt's `reduce`, which comes next, is of an attempt given up.
    expect(reduction.isAbandoned(stale)).toBe(true);
    // Shard 1 redone, on w2 again: attempt 1 is under way; a late failure of attempt 0 still is not of it.
    const [first, second] = outcomes(w1, w2) as [ShardOutcome<unknown>, ShardOutcome<unknown>];
    const running = reduction.run(8, plan, [first, { ...second, sends: 2 }]);
    expect(attemptsSentTo(w1)).toEqual([0, 1]);
    expect(reduction.isAbandoned({ ...stale, code: 'PEER_LOST' })).toBe(true);
    expect(reduction.isAbandoned({ ...stale, code: 'PEER_LOST', attempt: 1 })).toBe(false);
    // A failure naming no attempt (an older worker's), or a shard, is about whatever is under way.
    const { attempt: _none, ...withoutAttempt } = stale;
    expect(reduction.isAbandoned(withoutAttempt)).toBe(false);
    expect(reduction.isAbandoned({ ...stale, shard: 1 })).toBe(false);
    for (const worker of [w1, w2, w3]) reduced(worker, 8, 1);
    await running;
    expect(of(w2, 'apply')).toEqual([{ type: 'apply', step: 8, attempt: 1 }]);
    // Once it ended, no failure names an attempt under way.
    expect(reduction.isAbandoned({ ...stale, attempt: 1 })).toBe(true);
  });

  describe('a reduction that does not finish in time', () => {
    const lateWorkers = (events: CoordinatorEvent[]) =>
      events.filter((event) => event.type === 'late-peer').map((event) => event.worker);

    it('names late only the peers not heard from since it was confirmed, not those heartbeating while they wait', async () => {
      const { reduction, w1, w2, w3, outcomes, events, deadlinesPass, heartbeat } = setup();
      reduction.announce(9, plan, [w1, w2]);
      const running = reduction.run(9, plan, outcomes(w1, w2));
      heartbeat(w1);
      heartbeat(w3);
      deadlinesPass();
      await expect(running).rejects.toThrow(/^w2 \(worker-w2, test:1\) late after/);
      expect(lateWorkers(events)).toEqual(['w2']);
      expect([w1.state, w2.state, w3.state]).toEqual(['healthy', 'suspect', 'healthy']);
    });

    it('names every pending peer when all were heard from, or none: there is no telling which one is slow', async () => {
      for (const heard of [true, false]) {
        const { reduction, w1, w2, w3, outcomes, events, deadlinesPass, heartbeat } = setup();
        reduction.announce(9, plan, [w1, w2]);
        const running = reduction.run(9, plan, outcomes(w1, w2));
        if (heard) for (const worker of [w1, w2, w3]) heartbeat(worker);
        deadlinesPass();
        await expect(running).rejects.toThrow(/late after/);
        expect(lateWorkers(events)).toEqual(['w1', 'w2', 'w3']);
      }
    });

    it('never names a peer that holds the mean, heard from or not', async () => {
      const { reduction, w1, w2, w3, outcomes, events, deadlinesPass, heartbeat, reduced } = setup();
      reduction.announce(9, plan, [w1, w2]);
      const running = reduction.run(9, plan, outcomes(w1, w2));
      reduced(w1, 9, 0);
      heartbeat(w3);
      deadlinesPass();
      await expect(running).rejects.toThrow(/late after/);
      expect(lateWorkers(events)).toEqual(['w2']);
    });
  });

  it('is given up by a failure of one of its shards only from its planned holder, while the shards are computed', async () => {
    const { reduction, w1, w2, w3, of, outcomes, reduced } = setup();
    const shardFailure = {
      type: 'failure',
      code: 'COMPUTE_FAILED',
      message: 'late',
      step: 10,
      shard: 1,
    } as const;
    reduction.announce(10, plan, [w1, w2]);
    // w3 does not hold shard 1: nothing changes.
    reduction.failed(w3, shardFailure);
    const running = reduction.run(10, plan, outcomes(w1, w2));
    expect(of(w1, 'reduce')).toHaveLength(1);
    // Every shard answered: w2's failure of shard 1 now can only be a late one, of a shard redone.
    reduction.failed(w2, shardFailure);
    for (const worker of [w1, w2, w3]) reduced(worker, 10, 0);
    await running;
    expect(of(w2, 'apply')).toEqual([{ type: 'apply', step: 10, attempt: 0 }]);
  });
});
