import { createMsgpackCodec } from '@callosum/core';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { RoundIds } from '../dispatch/round-id.js';
import { resolveCoordinatorSettings } from '../settings.js';
import { zeroCounters } from '../telemetry/counters.js';
import type { CoordinatorEvent } from '../telemetry/events.js';
import { WireTraffic } from '../transport/wire-traffic.js';
import { WorkerConnection } from './connection.js';
import { WorkerRegistry } from './registry.js';
import { WorkerPool, type WorkerPoolContext } from './worker-pool.js';

// How the pool counts what a worker does in a row, as the dispatcher reports it, and when that evicts
// it. The connections are real, their sockets stand-ins that record how they were closed; real
// sockets and workers are in coordinator.test.ts and bad-workers.test.ts.

const pools: WorkerPool[] = [];
afterEach(() => {
  for (const pool of pools.splice(0)) pool.stop();
});

function setup() {
  const membership = new WorkerRegistry();
  const events: CoordinatorEvent[] = [];
  const counters = zeroCounters();
  const pool = new WorkerPool({
    settings: resolveCoordinatorSettings({ outDir: 'unused' }),
    membership,
    counters,
    telemetry: { record: (event: CoordinatorEvent) => events.push(event) },
    log: () => {},
    currentStep: () => 0,
  } as unknown as WorkerPoolContext);
  pools.push(pool);
  const closes: [number, string][] = [];
  const worker = new WorkerConnection(
    'w1',
    'test:1',
    {
      readyState: 1,
      CLOSED: 3,
      once: () => {},
      close: (code: number, reason: string) => closes.push([code, reason]),
    } as unknown as WebSocket,
    createMsgpackCodec(),
    new WireTraffic(),
    1,
    () => {},
  );
  membership.add(worker);
  worker.welcomed({ name: 'suspect-one', backend: 'cpu', readsTensorFrames: true });
  const evictions = () => events.filter((event) => event.type === 'eviction');
  return { pool, worker, closes, counters, evictions };
}

const step = RoundIds.step(4);
const problem = { code: 'COMPUTE_FAILED' as const, reason: 'COMPUTE_FAILED: simulated device failure' };

describe('WorkerPool judging its workers', () => {
  it('evicts a worker whose failures of 3 shards in a row were computed by others, naming what it did', () => {
    const { pool, worker, closes, counters, evictions } = setup();
    pool.failedShard(worker, step, 0, problem);
    pool.failedShard(worker, step, 1, problem);
    expect(worker.state).toBe('healthy');
    pool.failedShard(worker, RoundIds.step(5), 1, problem);
    expect(worker.state).toBe('gone');
    expect(closes).toEqual([[1008, 'COMPUTE_FAILED']]);
    expect(counters.evictions).toBe(1);
    expect(evictions()).toEqual([
      expect.objectContaining({
        worker: 'w1',
        code: 'COMPUTE_FAILED',
        reason:
          '3 shards in a row failed or answered unusably, each computed by another worker (last: step 6, shard 1: COMPUTE_FAILED: simulated device failure)',
      }),
    ]);
  });

  it('counts failures in a row only: an accepted training result starts again, evaluations neither count nor reset', () => {
    const { pool, worker, evictions } = setup();
    pool.failedShard(worker, step, 0, problem);
    pool.failedShard(worker, step, 1, problem);
    pool.delivered(worker, step);
    pool.failedShard(worker, step, 2, problem);
    pool.failedShard(worker, step, 3, problem);
    for (let shard = 0; shard < 5; shard++) pool.failedShard(worker, RoundIds.evaluation(0), shard, problem);
    pool.delivered(worker, RoundIds.evaluation(0));
    expect(worker.state).toBe('healthy');
    pool.failedShard(worker, step, 4, problem);
    expect(worker.state).toBe('gone');
    expect(evictions()).toHaveLength(1);
  });

  it('sets a late worker aside, and evicts it when late on 3 shards in a row without a result accepted between', () => {
    const { pool, worker, closes, evictions } = setup();
    pool.straggler(worker, 1, 2_100, 40);
    expect(worker.state).toBe('suspect');
    worker.recovered(); // a heartbeat
    pool.straggler(worker, 1, 2_050, 40);
    worker.recovered();
    // An honest straggler delivers between its late shards, and stays.
    pool.delivered(worker, RoundIds.evaluation(0));
    pool.straggler(worker, 1, 2_050, 40);
    worker.recovered();
    pool.straggler(worker, 1, 2_050, 40);
    worker.recovered();
    expect(worker.state).toBe('healthy');
    expect(evictions()).toEqual([]);
    pool.straggler(worker, 0, 2_003, 40);
    expect(worker.state).toBe('gone');
    expect(closes).toEqual([[4008, 'evicted: late too often']]);
    expect(evictions()).toEqual([
      expect.objectContaining({
        worker: 'w1',
        shard: 0,
        reason: expect.stringMatching(
          /^late on 3 shards in a row without a result accepted in between \(last: shard 0, pending 2003 ms while /,
        ),
      }),
    ]);
  });
});
