import type { ErrorCode } from '@callosum/core';
import { describe, expect, it } from 'vitest';
import { zeroCounters } from '../telemetry/counters.js';
import { ManualClock } from '../test-support/manual-clock.js';
import type { WorkerConnection } from '../workers/connection.js';
import { WorkerRegistry } from '../workers/registry.js';
import { describeRound, RoundIds } from './round-id.js';
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
  /** Results accepted, as `worker shard`, and failures reported against their worker. */
  const delivered: string[] = [];
  const failures: string[] = [];
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
        delivered: (worker) => {
          delivered.push(worker.id);
        },
        failedShard: (worker, round, shard, problem) => {
          failures.push(
            `${worker.id} ${describeRound(round)} shard ${shard}: ${problem.code} ${problem.reason}`,
          );
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
  const fail = (
    shard: number,
    worker: WorkerConnection,
    reason = 'boom',
    code: ErrorCode = 'COMPUTE_FAILED',
  ) => dispatcher.reject(RoundIds.step(0), shard, worker, { code, reason });
  return {
    dispatcher,
    membership,
    clock,
    counters,
    workers,
    late,
    missed,
    sent,
    delivered,
    failures,
    task,
    answer,
    fail,
  };
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
  it('redoes a failed shard on another worker, even a busier one; on the same only when no other can take it, and never after a non-finite result', async () => {
    const { dispatcher, counters, workers, sent, failures, task, answer, fail } = setup(2);
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    const round = dispatcher.run(RoundIds.step(0), [task(0, 0, 10), task(1, 1, 10), task(2, 1, 10)]);
    // w1 holds nothing now and w2 20 samples, but w1 just failed the shard.
    fail(0, w1, 'bad counts', 'MALFORMED_MESSAGE');
    expect(sent.at(-1)).toBe('0→w2');
    // Now every worker has failed it: it goes back to the least loaded of them.
    fail(0, w2);
    expect(sent.at(-1)).toBe('0→w1');
    // A non-finite result would come out the same on the same worker: not w1 again in this round.
    dispatcher.reject(RoundIds.step(0), 0, w1, { code: 'NON_FINITE', reason: 'NaN' }, true);
    expect(sent.at(-1)).toBe('0→w2');
    // A result for another round is not this round's, whatever its shard.
    expect(dispatcher.accept(RoundIds.evaluation(0), 1, w2, 10, {})).toBe(false);
    answer(1, w2, 10);
    answer(2, w2, 10);
    expect(failures).toEqual([]);
    answer(0, w2, 10);
    expect((await round).map((outcome) => outcome.worker.id)).toEqual(['w2', 'w2', 'w2']);
    // w2 computed what w1 could not: that counts against w1 (once, with its last failure); w2's own
    // failure of it does not count, since it delivered since.
    expect(failures).toEqual(['w1 step 1 shard 0: NON_FINITE NaN']);
    expect(counters).toMatchObject({ redoneShards: 3, discardedMessages: 1 });
  });

  it('redoes a shard the wrong size elsewhere, and reports the sender once another worker computed it', async () => {
    const { dispatcher, workers, sent, failures, delivered, task, answer } = setup(2);
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    const round = dispatcher.run(RoundIds.step(0), [task(0, 0, 10), task(1, 1, 10)]);
    expect(answer(0, w1, 11)).toBe(false);
    expect(sent.at(-1)).toBe('0→w2');
    answer(1, w2, 10);
    answer(0, w2, 10);
    await round;
    expect(delivered).toEqual(['w2', 'w2']);
    expect(failures).toEqual([
      'w1 step 1 shard 0: MALFORMED_MESSAGE result counts 11 samples, the shard has 10',
    ]);
  });

  it('does not count a failure against a worker that has had a result accepted since', async () => {
    const { dispatcher, workers, sent, failures, delivered, task, answer, fail } = setup(2);
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    const round = dispatcher.run(RoundIds.step(0), [task(0, 0, 10), task(1, 1, 10), task(2, 0, 10)]);
    fail(0, w1);
    expect(sent.at(-1)).toBe('0→w2');
    answer(2, w1, 10);
    answer(1, w2, 10);
    answer(0, w2, 10);
    await round;
    expect(delivered).toEqual(['w1', 'w2', 'w2']);
    expect(failures).toEqual([]);
  });

  it('stops with COMPUTE_FAILED after 5 tries when every worker fails the shard, counting it against none', async () => {
    const { dispatcher, workers, sent, failures, task, fail } = setup(2);
    const [w1, w2] = workers as [WorkerConnection, WorkerConnection];
    const round = dispatcher.run(RoundIds.step(0), [task(0, 0, 10)]);
    const failing = round.then(
      () => undefined,
      (error: unknown) => error,
    );
    for (const worker of [w1, w2, w1, w2, w1]) fail(0, worker, `boom on ${worker.id}`);
    expect(sent).toEqual(['0→w1', '0→w2', '0→w1', '0→w2', '0→w1']);
    expect(await failing).toMatchObject({
      code: 'COMPUTE_FAILED',
      message: 'step 1: shard 0 failed 5 times (last: worker w1: boom on w1); stopping',
    });
    expect(failures).toEqual([]);
  });

  it('goes on past 5 tries while a healthy worker that has not failed the shard is there, and reports each that did', async () => {
    const { dispatcher, workers, sent, failures, task, answer, fail } = setup(7);
    const round = dispatcher.run(RoundIds.step(0), [task(0, 0, 10)]);
    for (const worker of workers.slice(0, 6)) fail(0, worker);
    expect(sent).toEqual(['0→w1', '0→w2', '0→w3', '0→w4', '0→w5', '0→w6', '0→w7']);
    answer(0, workers[6] as WorkerConnection, 10);
    expect((await round).map((outcome) => outcome.worker.id)).toEqual(['w7']);
    expect(failures).toEqual(
      ['w1', 'w2', 'w3', 'w4', 'w5', 'w6'].map((id) => `${id} step 1 shard 0: COMPUTE_FAILED boom`),
    );
  });

  it('stops after 5 tries of a shard whose workers were lost, whoever is left', async () => {
    const { dispatcher, membership, workers, task } = setup(6);
    const round = dispatcher.run(RoundIds.step(0), [task(0, 0, 10)]);
    const failing = round.then(
      () => undefined,
      (error: unknown) => error,
    );
    for (const worker of workers.slice(0, 5)) {
      membership.remove(worker);
      await Promise.resolve(); // the registry tells its listeners once remove has returned
    }
    expect(await failing).toMatchObject({
      code: 'COMPUTE_FAILED',
      message: 'step 1: shard 0 failed 5 times (last: worker w5 was lost); stopping',
    });
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
