/** However often a worker process was evicted, it is refused for at most this long. */
const MAX_COOLDOWN_MS = 10 * 60_000;

/**
 * Worker processes evicted for their results (failed or unusable shards), by instance id
 * (INSTANCE_HEADER): one that connects again is refused for a while, twice as long at each further
 * eviction, as Horovod's elastic mode blacklists a failing host for a cooldown. Taken back at once, a
 * worker whose every shard fails fails three more, is evicted again, and so on for the whole run, each
 * round costing redone shards (19 evictions in a 600-step run, before this).
 */
export class EvictionCooldowns {
  readonly #byInstance = new Map<string, { evictions: number; until: number; why: string }>();

  constructor(
    private readonly baseMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The worker process `instance` was just evicted for its results, `why`. Returns how long it is refused (ms). */
  evicted(instance: string, why: string): number {
    const evictions = (this.#byInstance.get(instance)?.evictions ?? 0) + 1;
    const cooldownMs = Math.min(this.baseMs * 2 ** (evictions - 1), MAX_COOLDOWN_MS);
    this.#byInstance.set(instance, { evictions, until: this.now() + cooldownMs, why: why.slice(0, 500) });
    return cooldownMs;
  }

  /** Why the worker process `instance` may not join now, or undefined if it may. */
  refusal(instance: string): string | undefined {
    const record = this.#byInstance.get(instance);
    const leftMs = record === undefined ? 0 : record.until - this.now();
    if (record === undefined || leftMs <= 0) return undefined;
    const times = record.evictions === 1 ? 'once' : `${record.evictions} times`;
    return `evicted ${times} for its results (last: ${record.why}); taken back in ${Math.ceil(leftMs / 1000)} s`;
  }
}
