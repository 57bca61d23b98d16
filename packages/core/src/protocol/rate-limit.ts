/**
 * Connection attempts per remote address, as token buckets: `burst` at once, then `perSecond`. Keeps a
 * flood of upgrade requests (authenticated or not) from costing the coordinator more than a refusal.
 */
export class ConnectionRateLimit {
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {}

  /** Takes one attempt from `address`'s bucket; false when it is empty. */
  allow(address: string, now = Date.now()): boolean {
    const bucket = this.buckets.get(address) ?? { tokens: this.burst, updatedAt: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.perSecond);
    bucket.updatedAt = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.buckets.set(address, bucket);
    if (this.buckets.size > 10_000) this.forgetFull(now);
    return allowed;
  }

  /** Buckets that have refilled completely carry no information: drop them to bound memory. */
  private forgetFull(now: number): void {
    for (const [address, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.perSecond >= this.burst)
        this.buckets.delete(address);
    }
  }
}
