import { AUTH_HEADER, createAuthHeader } from '@callosum/core';
import WebSocket from 'ws';
import type { PeerTls } from './options.js';
import { peerTlsClientOptions } from './peer-tls.js';

export interface PeerLinksOptions {
  /** This worker's name, proved with the token to each peer. */
  readonly name: string;
  readonly token: string | undefined;
  /**
   * Dial wss:// and trust only peers whose certificate the CA signed, presenting this worker's own. A
   * ring's members all agree on it: the coordinator admits no worker that differs from the run.
   */
  readonly tls: PeerTls | undefined;
  /** Called once when a link to `address` fails (refused, closed, unreachable) while it is in use. */
  readonly onLinkFailed: (address: string, reason: string) => void;
}

/**
 * The connections this worker opens to its ring peers, one per peer address, kept from step to step
 * and opened again when one drops. A frame for a link still connecting waits for it, in order.
 */
export class PeerLinks {
  private readonly links = new Map<string, WebSocket>();
  #sentBytes = 0;

  constructor(private readonly options: PeerLinksOptions) {}

  /** Bytes of every frame sent so far. */
  get sentBytes(): number {
    return this.#sentBytes;
  }

  send(address: string, frame: Uint8Array): void {
    const link = this.linkTo(address);
    this.#sentBytes += frame.byteLength;
    if (link.readyState === WebSocket.OPEN) link.send(frame);
    else link.once('open', () => link.send(frame));
  }

  /** Closes the links to every address not in `keep` (peers that left the ring). */
  retain(keep: ReadonlySet<string>): void {
    for (const [address, link] of this.links) {
      if (keep.has(address)) continue;
      this.links.delete(address);
      link.close(1000, 'left the ring');
    }
  }

  closeAll(): void {
    this.retain(new Set());
  }

  private linkTo(address: string): WebSocket {
    const existing = this.links.get(address);
    if (existing !== undefined && existing.readyState <= WebSocket.OPEN) return existing;
    const { name, token, tls } = this.options;
    const link = new WebSocket(`${tls === undefined ? 'ws' : 'wss'}://${address}`, {
      perMessageDeflate: false,
      ...(tls === undefined ? {} : peerTlsClientOptions(tls)),
      // See worker.ts: frames go unmasked, as this client is not a browser.
      generateMask: (mask: Buffer) => mask.fill(0),
      ...(token === undefined ? {} : { headers: { [AUTH_HEADER]: createAuthHeader(token, name) } }),
    });
    let failed = false;
    const fail = (reason: string) => {
      if (failed || this.links.get(address) !== link) return;
      failed = true;
      this.links.delete(address);
      this.options.onLinkFailed(address, reason);
    };
    link.on('error', (error) => fail(error.message));
    link.on('unexpected-response', (_request, response) => {
      const status = [response.statusCode, response.statusMessage].filter(Boolean).join(' ');
      fail(`HTTP ${status} instead of a WebSocket upgrade`);
      link.terminate();
    });
    link.on('close', (code) => fail(`closed with ${code}`));
    // Peers send nothing back on this link; anything that arrives is ignored.
    this.links.set(address, link);
    return link;
  }
}
