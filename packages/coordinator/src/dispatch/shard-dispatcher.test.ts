import { describe, expect, it } from 'vitest';
import { zeroCounters } from '../telemetry/counters.js';
import { ManualClock } from '../test-support/manual-clock.js';
import type { WorkerConnection } from '../workers/connection.js';
import { WorkerRegistry } from '../workers/registry.js';
import { RoundIds } from './round-id.js';
import {
  type DispatcherOptions,
  ShardDispatcher,
  type ShardRequest,
  type ShardTask,
} from './shard-dispatcher.js';
import { lateAfterMs, typicalShardMs } from './straggler-rule.js';

// The dispatcher's deadlines and redo rules, on a manual clock. The worker connections are stubs with
// the state machine's two moves the findings make (the rules are about timing, not transport); real
// workers and real SIGSTOPs are tested in packages/cli.

function stubWorker(id: string): WorkerConnection {
  const stub = {
    id,
    label: id,
    state: 'healthy',
    suspected() {
      stub.state = 'suspect';
    },
    gone() {
      stub.state = 'gone';
    },
  };
  return stub as unknown as WorkerConnection;
}

const rule = { factor: 2, floorMs: 50 };

function setup(workerCount = 2, overrides: Partial<DispatcherOptions> = {}) {
  const clock = new ManualClock();
  const membership = new WorkerRegistry();
  const workers = Array.from({ length: workerCount }, (_, i) => stubWorker(`w${i + 1}`));
  for (const worker of workers) {
    membership.add(worker);
  }
  const late: string[] = [];
  const missed: number[] = [];
  const sent: string[] = [];
  const counters = zeroCounters();
  const dispatcher = new ShardDispatcher(
    {
      membership,
      sender: { send: (worker, request) => sent.push(`${request.shard}→${worker.id}`) },
      // As the worker pool does: a late worker gets no new work until it answers; one that missed
      // the hard deadline is evicted.
      findings: {
        missedDeadline: (worker, shard) => {
          missed.push(shard);
          membership.remove(worker);
        },
        straggler: (worker, shard, pendingMs, typicalMs) => {
          late.push(`${worker.id} shard ${shard} after ${pendingMs} ms, typical ${typicalMs} ms`);
          worker.suspected();
        },
      },
      counters,
      clock,
      log: () => {},
    },
    {
      shardDeadlineMs: 60_000,
      noWorkerTimeoutMs: 60_000,
      stragglerFactor: rule.factor,
      stragglerFloorMs: rule.floorMs,
      ...overrides,
    },
  );
  const task = (index: number, part: number, count: number): ShardTask => ({
    index,
    part,
    count,
    // Only the shard number matters to these tests; the samples are the workers' business.
    request: { type: 'compute', step: 0, shard: index, weightsVersion: 0 } as ShardRequest,
  });
  const answer = (shard: number, worker: WorkerConnection, count: number) =>
    dispatcher.accept(RoundIds.step(0), shard, worker, count, { shard });
  return { dispatcher, membership, clock, counters, workers, late, missed, sent, task, answer };
}

describe('ShardDispatcher straggler deadline', () => {
  it('judges a shard from when its worker answered the one before it, and per sample', async () => {
    const { dispatcher, clock, counters, workers, late, sent, task, answer } = setup();
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    // w1 gets one shard of 20 samples; w2 three of 10 that it computes one after the other.
    const round = dispatcher.run(RoundIds.step(0), [
      task(0, 0, 20),
      task(1, 1, 10),
      task(2, 1, 10),
      task(3, 1, 10),
    ]);
    expect(sent).toEqual(['0→w1', '1→w2', '2→w2', '3→w2']);
    clock.advance(100);
    answer(0, w1, 20); // 5 ms per sample
    answer(1, w2, 10); // 10 ms per sample: the median is 7.5
    clock.advance(100);
    answer(2, w2, 10);
    // Shard 3 has waited 250 ms since it was sent, but w2 only started on it at 200 ms; its deadline is
    // 2 × 7.5 ms × 10 samples = 150 ms from then.
    clock.advance(50);
    expect(late).toEqual([]);
    clock.advance(40);
    answer(3, w2, 10);
    const outcomes = await round;
    expect(late).toEqual([]);
    expect(outcomes.map((outcome) => outcome.startedAt)).toEqual([0, 0, 100, 200]);
    expect(counters.lateShards).toBe(0);
  });

  it('names a worker that stops answering once, and redoes all it holds on the workers with the fewest pending samples', async () => {
    const { dispatcher, clock, counters, workers, late, sent, task, answer } = setup(3);
    const [w1, w2, w3] = workers as [WorkerConnection, WorkerConnection, WorkerConnection];
    // w2 holds three shards of 10 samples; w3 one of 30, w1 one of 10.
    const round = dispatcher.run(RoundIds.step(0), [
      task(0, 0, 10),
      task(1, 1, 10),
      task(2, 1, 10),
      task(3, 1, 10),
      task(4, 2, 30),
    ]);
    clock.advance(100);
    answer(0, w1, 10);
    answer(1, w2, 10); // 10 ms per sample; w2 then hangs on shard 2, with shard 3 queued behind it
    // The dispatcher's own rule: 2 × the median 10 ms per sample × 10 samples, from when w2 answered.
    const deadline = lateAfterMs(rule, [10, 10], 10);
    expect(deadline).toBe(200);
    clock.advance(deadline - 1);
    expect(late).toEqual([]);
    clock.advance(1);
    expect(late).toEqual([`w2 shard 2 after ${deadline} ms, typical ${typicalShardMs([10, 10], 10)} ms`]);
    // Both of w2's shards go to w1, which has nothing pending; w3 still has its 30 samples.
    expect(sent.slice(5)).toEqual(['2→w1', '3→w1']);
    clock.advance(100);
    answer(2, w1, 10);
    answer(4, w3, 30);
    clock.advance(100);
    answer(3, w1, 10);
    const outcomes = await round;
    expect(outcomes.map((outcome) => outcome.worker.id)).toEqual(['w1', 'w2', 'w1', 'w1', 'w3']);
    expect(counters).toMatchObject({ lateShards: 1, redoneShards: 2 });
  });

  it('holds a hard deadline against the shard a worker is on, not one queued behind it', async () => {
    const { dispatcher, clock, missed, task, answer, workers } = setup(1, { shardDeadlineMs: 1_000 });
    const [w1] = workers as [WorkerConnection];
    const round = dispatcher.run(RoundIds.step(0), [task(0, 0, 10), task(1, 0, 10)]);
    clock.advance(900);
    answer(0, w1, 10);
    clock.advance(800); // shard 1 was sent 1,700 ms ago, but w1 started on it 800 ms ago
    expect(missed).toEqual([]);
    clock.advance(1_000);
    expect(missed).toEqual([1]);
    dispatcher.abort(new Error('stopped'));
    await expect(round).rejects.toThrow('stopped');
  });

  it('reports a worker past the hard deadline once, and redoes everything it held on the others', async () => {
    const { dispatcher, clock, counters, missed, sent, task, answer, workers } = setup(2, {
      shardDeadlineMs: 1_000,
      stragglerFactor: Number.POSITIVE_INFINITY,
    });
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    const round = dispatcher.run(RoundIds.step(0), [task(0, 0, 10), task(1, 1, 10), task(2, 1, 10)]);
    answer(0, w1, 10);
    clock.advance(1_000);
    expect(missed).toEqual([1]);
    expect(sent.slice(3)).toEqual(['1→w1', '2→w1']);
    // What the evicted worker still sends for its shards is not theirs any more.
    expect(answer(1, w2, 10)).toBe(false);
    answer(1, w1, 10);
    answer(2, w1, 10);
    expect((await round).map((outcome) => outcome.worker.id)).toEqual(['w1', 'w1', 'w1']);
    expect(counters).toMatchObject({ redoneShards: 2, discardedMessages: 1, lateShards: 0 });
  });

  it('stops a round with NO_WORKERS when no healthy worker is left for the no-worker timeout', async () => {
    const { dispatcher, clock, membership, task, workers } = setup(1, { noWorkerTimeoutMs: 5_000 });
    const [w1] = workers as [WorkerConnection];
    let stopped: unknown;
    const round = dispatcher.run(RoundIds.evaluation(3), [task(0, 0, 10)]).catch((error: unknown) => {
      stopped = error;
    });
    membership.remove(w1);
    await Promise.resolve(); // the registry tells its listeners once remove has returned
    clock.advance(4_999);
    await Promise.resolve();
    expect(stopped).toBeUndefined();
    clock.advance(1);
    await round;
    expect(stopped).toMatchObject({
      code: 'NO_WORKERS',
      message: 'evaluation 3: no healthy worker for 5000 ms',
    });
  });
});

describe('ShardDispatcher redo', () => {
  it('redoes a shard on the least-loaded worker, but never on one that found it non-finite in this round', async () => {
    const { dispatcher, counters, workers, sent, task, answer } = setup(2);
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    const round = dispatcher.run(RoundIds.step(0), [task(0, 0, 10), task(1, 1, 10), task(2, 1, 10)]);
    dispatcher.reject(RoundIds.step(0), 0, w1, 'bad counts');
    expect(sent.at(-1)).toBe('0→w1'); // w1 holds nothing now; w2 holds 20 samples
    dispatcher.reject(RoundIds.step(0), 0, w1, 'NON_FINITE', true);
    expect(sent.at(-1)).toBe('0→w2');
    // A result for another round is not this round's, whatever its shard.
    expect(dispatcher.accept(RoundIds.evaluation(0), 1, w2, 10, {})).toBe(false);
    answer(1, w2, 10);
    answer(2, w2, 10);
    answer(0, w2, 10);
    expect((await round).map((outcome) => outcome.worker.id)).toEqual(['w2', 'w2', 'w2']);
    expect(counters).toMatchObject({ redoneShards: 2, discardedMessages: 1 });
  });
});

describe('the straggler rule', () => {
  it('is the factor times the median time per sample times the shard size, never below the floor', () => {
    expect(typicalShardMs([5, 10, 100], 10)).toBe(100);
    expect(typicalShardMs([5, 10], 10)).toBe(75);
    expect(lateAfterMs({ factor: 4, floorMs: 0 }, [5, 10, 100], 10)).toBe(400);
    expect(lateAfterMs({ factor: 4, floorMs: 2_000 }, [5, 10, 100], 10)).toBe(2_000);
    expect(lateAfterMs({ factor: Number.POSITIVE_INFINITY, floorMs: 50 }, [1], 1)).toBe(
      Number.POSITIVE_INFINITY,
    );
  });
});
