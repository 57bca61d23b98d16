import { describe, expect, it } from 'vitest';
import { EvictionCooldowns } from './eviction-cooldown.js';

// The cooldowns' own arithmetic, on a clock the test moves (bad-workers.test.ts has the coordinator
// refusing a real connection with them).
describe('EvictionCooldowns', () => {
  it('refuses a worker process for the base time after its first eviction, twice as long after each further one, at most 10 minutes', () => {
    let now = 0;
    const cooldowns = new EvictionCooldowns(30_000, () => now);
    const granted = [1, 2, 3, 4, 5, 6, 7].map(() => cooldowns.evicted('w', 'failed'));
    expect(granted).toEqual([30_000, 60_000, 120_000, 240_000, 480_000, 600_000, 600_000]);
    expect(cooldowns.refusal('w')).toBe(
      'evicted 7 times for its results (last: failed); taken back in 600 s',
    );
    now = 599_001;
    expect(cooldowns.refusal('w')).toMatch(/taken back in 1 s$/);
    now = 600_000;
    expect(cooldowns.refusal('w')).toBeUndefined();
  });

  it('holds an eviction against that process only', () => {
    const cooldowns = new EvictionCooldowns(1_000, () => 0);
    cooldowns.evicted('a', '3 shards in a row failed');
    expect(cooldowns.refusal('a')).toBe(
      'evicted once for its results (last: 3 shards in a row failed); taken back in 1 s',
    );
    expect(cooldowns.refusal('b')).toBeUndefined();
  });

  it('with a base of 0 takes every worker back at once', () => {
    const cooldowns = new EvictionCooldowns(0, () => 0);
    expect(cooldowns.evicted('a', 'failed')).toBe(0);
    expect(cooldowns.evicted('a', 'failed')).toBe(0);
    expect(cooldowns.refusal('a')).toBeUndefined();
  });
});
