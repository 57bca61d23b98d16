import { describe, expect, it } from 'vitest';
import type { CoordinatorEvent, RecordedEvent } from '../telemetry/events.js';
import { EventBacklog } from './event-backlog.js';

const time = '2026-12-06T00:00:00.000Z';

function step(n: number): RecordedEvent {
  return {
    time,
    type: 'step',
    step: n,
    totalSteps: 100_000,
    epoch: 0,
    loss: 1,
    accuracy: 0.5,
    learningRate: 0.01,
    samplesPerSecond: 100,
    workers: 1,
    perWorker: [{ id: 'w1', samples: 64, computeMs: 1, transferMs: 1, waitMs: 0 }],
    updateMs: 1,
    stepMs: 3,
    redoneShards: 0,
    redoneSteps: 0,
    lateShards: 0,
    discardedMessages: 0,
    evictions: 0,
  };
}

function recorded(event: CoordinatorEvent): RecordedEvent {
  return { time, ...event };
}

describe('EventBacklog', () => {
  it('keeps a short run whole, in the order it was recorded', () => {
    const backlog = new EventBacklog();
    const events = [
      recorded({ type: 'worker-joined', worker: 'w1', name: 'a', address: 'x', backend: 'wasm', healthy: 1 }),
      step(1),
      recorded({ type: 'checkpoint', step: 1, path: 'c' }),
      step(2),
    ];
    for (const event of events) backlog.add(event);
    expect(backlog.events()).toEqual(events);
  });

  it('stays bounded over a long run: the latest steps whole, older ones evenly thinned without their split', () => {
    const backlog = new EventBacklog();
    backlog.add(
      recorded({ type: 'worker-joined', worker: 'w1', name: 'a', address: 'x', backend: 'wasm', healthy: 1 }),
    );
    for (let n = 1; n <= 100_000; n++) backlog.add(step(n));
    for (let n = 0; n < 1_000; n++) {
      backlog.add(recorded({ type: 'auth-failure', peer: 'p', status: 401, reason: 'no proof' }));
    }
    const kept = backlog.events();
    expect(kept.length).toBeLessThan(1_500);
    expect(kept[0]?.type).toBe('worker-joined');
    const steps = kept.flatMap((event) => (event.type === 'step' ? [event] : []));
    expect(steps.at(-1)?.step).toBe(100_000);
    expect(steps.slice(-200).every((event) => event.perWorker.length === 1)).toBe(true);
    const older = steps.slice(0, -200);
    expect(older.every((event) => event.perWorker.length === 0)).toBe(true);
    // Evenly spread: the same gap between every two older steps, and in order.
    const gaps = new Set(older.slice(1).map((event, i) => event.step - (older[i]?.step ?? 0)));
    expect(gaps.size).toBe(1);
    expect(kept.filter((event) => event.type === 'auth-failure')).toHaveLength(200);
  });
});
