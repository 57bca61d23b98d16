import { describe, expect, it } from 'vitest';
import { eventLog, eventLogLine } from './event-log.js';
import type { CoordinatorEvent } from './events.js';

const worker = { worker: 'w2', name: 'worker-2', address: '127.0.0.1:5000' };

describe('the event log', () => {
  it('formats each worker event once, naming the worker by id, name and address', () => {
    expect(
      eventLogLine({
        type: 'straggler',
        ...worker,
        shard: 3,
        phase: 'computing',
        pendingMs: 812.4,
        typicalMs: 101.6,
        lastHeardMs: 40,
      }),
    ).toBe(
      'worker w2 (worker-2, 127.0.0.1:5000) is late: shard 3 pending 812 ms (others took 102 ms) while ' +
        'computing, last heard 40 ms ago; redoing its shard elsewhere',
    );
    expect(eventLogLine({ type: 'worker-joined', ...worker, backend: 'wasm', healthy: 2 })).toBe(
      'worker w2 (worker-2, 127.0.0.1:5000) joined (backend wasm); 2 healthy',
    );
    // Before its hello a connection has no name.
    expect(
      eventLogLine({
        type: 'rejected-message',
        ...worker,
        name: '',
        code: 'MALFORMED_MESSAGE',
        message: 'not MessagePack',
      }),
    ).toBe('worker w2 (127.0.0.1:5000): MALFORMED_MESSAGE: not MessagePack');
    expect(eventLogLine({ type: 'checkpoint', step: 5, path: '/x' })).toBeUndefined();
  });

  it('writes a line per event it formats, and only the first 20 refused connections of a flood', () => {
    const lines: string[] = [];
    const sink = eventLog((line) => lines.push(line));
    const time = new Date();
    const refused: CoordinatorEvent = {
      type: 'connection-refused',
      peer: '127.0.0.1:6000',
      status: 429,
      reason: 'rate limited',
    };
    for (let i = 0; i < 25; i++) sink(refused, time);
    sink(
      { type: 'eviction', ...worker, reason: 'silent for 9000 ms (last heard while idle)', phase: 'idle' },
      time,
    );
    sink({ type: 'checkpoint', step: 5, path: '/x' }, time);
    expect(lines).toHaveLength(21);
    expect(lines[0]).toBe('coordinator: refused connection from 127.0.0.1:6000 (429): rate limited');
    expect(lines[20]).toBe(
      'coordinator: evicting worker w2 (worker-2, 127.0.0.1:5000): silent for 9000 ms (last heard while idle); its shards are redone',
    );
  });
});
