/** Bytes one peer's frames moved, both ways. */
export interface PeerBytes {
  readonly peer: string;
  readonly sent: number;
  readonly received: number;
}

/**
 * Bytes of worker frames through the transport, both ways: WebSocket payloads as sent and received,
 * without the framing and TLS overhead. Counted by each worker connection. The totals since the start
 * are what /metrics reads; the window, per peer since it was last started, is what one training step
 * moved.
 */
export class WireTraffic {
  #sentBytes = 0;
  #receivedBytes = 0;
  /** Only the peers heard from or sent to since the window started: no entry outlives a step. */
  #window = new Map<string, { sent: number; received: number }>();

  get sentBytes(): number {
    return this.#sentBytes;
  }
  get receivedBytes(): number {
    return this.#receivedBytes;
  }

  sent(peer: string, bytes: number): void {
    this.#sentBytes += bytes;
    this.windowOf(peer).sent += bytes;
  }

  received(peer: string, bytes: number): void {
    this.#receivedBytes += bytes;
    this.windowOf(peer).received += bytes;
  }

  /** Counts each peer's bytes afresh from now (e.g. from the start of a step). */
  startWindow(): void {
    this.#window = new Map();
  }

  /** Each peer's bytes since the window started. */
  get window(): PeerBytes[] {
    return [...this.#window].map(([peer, bytes]) => ({ peer, ...bytes }));
  }

  private windowOf(peer: string): { sent: number; received: number } {
    let bytes = this.#window.get(peer);
    if (bytes === undefined) {
      bytes = { sent: 0, received: 0 };
      this.#window.set(peer, bytes);
    }
    return bytes;
  }
}
