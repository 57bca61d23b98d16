/**
 * Bytes of worker frames through the transport, both ways: WebSocket payloads as sent and received,
 * without the framing and TLS overhead. Counted by each worker connection; read by /metrics.
 */
export class WireTraffic {
  #sentBytes = 0;
  #receivedBytes = 0;

  get sentBytes(): number {
    return this.#sentBytes;
  }
  get receivedBytes(): number {
    return this.#receivedBytes;
  }

  sent(bytes: number): void {
    this.#sentBytes += bytes;
  }

  received(bytes: number): void {
    this.#receivedBytes += bytes;
  }
}
