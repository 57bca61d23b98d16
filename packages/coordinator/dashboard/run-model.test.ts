import { describe, expect, it } from 'vitest';
import type { CoordinatorEvent, RecordedEvent } from '../src/telemetry/events.js';
import { RunModel } from './run-model.js';

const time = '2026-12-06T00:00:00.000Z';
const peer = (worker: string) => ({ worker, name: `name-${worker}`, address: '127.0.0.1:1' });

function recorded(event: CoordinatorEvent): RecordedEvent {
  return { time, ...event };
}

function step(n: number, workers: string[], redoneShards = 0): RecordedEvent {
  return recorded({
    type: 'step',
    step: n,
    totalSteps: 10,
    epoch: 0,
    loss: 2 / n,
    accuracy: n / 10,
    learningRate: 0.01,
    samplesPerSecond: 100,
    workers: workers.length,
    perWorker: workers.map((id) => ({ id, samples: 32, computeMs: 5, transferMs: 2, waitMs: 1 })),
    updateMs: 1,
    stepMs: 9,
    redoneShards,
    redoneSteps: 0,
    lateShards: 0,
    discardedMessages: 0,
    evictions: 0,
  });
}

function modelOf(events: RecordedEvent[]): RunModel {
  const model = new RunModel();
  for (const event of events) model.apply(event);
  return model;
}

describe('RunModel', () => {
  it('follows each worker through its states, with its last step and its late and evicted counts', () => {
    const model = modelOf([
      recorded({ type: 'worker-joined', ...peer('w1'), backend: 'wasm', healthy: 1 }),
      recorded({ type: 'worker-joined', ...peer('w2'), backend: 'cpu', healthy: 2 }),
      recorded({ type: 'worker-joined', ...peer('w3'), backend: 'wasm', healthy: 3 }),
      step(1, ['w1', 'w2', 'w3']),
      recorded({
        type: 'straggler',
        ...peer('w2'),
        shard: 1,
        phase: 'computing',
        pendingMs: 900,
        typicalMs: 100,
        lastHeardMs: 10,
      }),
      recorded({ type: 'eviction', ...peer('w3'), reason: 'silent' }),
      recorded({ type: 'worker-left', ...peer('w3'), reason: 'evicted' }),
      step(2, ['w1'], 2),
    ]);
    expect(
      model.workers.map(({ id, state, late, evicted, backend }) => [id, state, late, evicted, backend]),
    ).toEqual([
      ['w1', 'healthy', 0, false, 'wasm'],
      ['w2', 'suspect', 1, false, 'cpu'],
      ['w3', 'gone', 0, true, 'wasm'],
    ]);
    expect(model.workers[2]?.lastStep).toEqual({
      id: 'w3',
      samples: 32,
      computeMs: 5,
      transferMs: 2,
      waitMs: 1,
    });
    expect(model.log.map((entry) => entry.kind)).toEqual([
      'worker-joined',
      'worker-joined',
      'worker-joined',
      'straggler',
      'eviction',
      'worker-left',
      'redone',
    ]);
    expect(model.log.at(-1)?.text).toBe('step 2: 2 shards redone');
  });

  it('shows a resumed run from its checkpoint on: the steps after it are replaced, the workers are new, it runs again', () => {
    const model = modelOf([
      recorded({ type: 'worker-joined', ...peer('w1'), backend: 'wasm', healthy: 1 }),
      ...[1, 2, 3, 4].map((n) => step(n, ['w1'])),
      recorded({ type: 'stopped', code: 'COORDINATOR_STOPPING', reason: 'SIGTERM', step: 4 }),
      recorded({ type: 'resumed', step: 2, totalSteps: 10, checkpoint: 'step-2' }),
      recorded({ type: 'worker-joined', ...peer('w1'), backend: 'cpu', healthy: 1 }),
      step(3, ['w1']),
    ]);
    expect(model.steps.map((event) => event.step)).toEqual([1, 2, 3]);
    expect(model.workers.map((worker) => worker.backend)).toEqual(['cpu']);
    expect(model.outcome).toEqual({ kind: 'running' });
    expect(model.log.map((entry) => entry.kind)).toContain('stopped');
  });
});
