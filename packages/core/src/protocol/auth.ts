import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CallosumError, ErrorCodes } from '../errors.js';
import { PROTOCOL_VERSION } from './version.js';

/**
 * Token authentication of a worker's connection (docs/protocol.md, "Authentication"). The worker proves
 * it knows the shared token without sending it: an HMAC-SHA256, keyed with the token, over the protocol
 * major version, its name, a timestamp and a random nonce, sent in one HTTP header on the WebSocket
 * upgrade. The coordinator checks it before upgrading (401 otherwise): the MAC in constant time, the
 * timestamp within a window, and the nonce against those seen in that window, so a captured header
 * cannot be replayed.
 */
export const AUTH_HEADER = 'x-callosum-auth';

/** The shortest token a coordinator takes: shorter secrets are guessed too easily. */
export const MIN_TOKEN_LENGTH = 16;
const SCHEME = 'v1';

function mac(token: string, workerName: string, timestamp: number, nonce: string, major: number): Buffer {
  return createHmac('sha256', token)
    .update(`callosum-auth-${SCHEME}\n${major}\n${workerName}\n${timestamp}\n${nonce}`)
    .digest();
}

/** The header value a worker sends; fresh (new timestamp and nonce) for every connection attempt. */
export function createAuthHeader(token: string, workerName: string, now = Date.now()): string {
  const nonce = randomBytes(16).toString('hex');
  const signature = mac(token, workerName, now, nonce, PROTOCOL_VERSION.major).toString('hex');
  return [SCHEME, Buffer.from(workerName).toString('base64url'), now, nonce, signature].join(' ');
}

export type AuthResult = { ok: true; workerName: string } | { ok: false; reason: string };

/** The default largest difference between a worker's clock and the coordinator's. */
export const AUTH_CLOCK_WINDOW_MS = 60_000;

export interface AuthVerifierOptions {
  /** Largest accepted difference between the worker's clock and ours (default AUTH_CLOCK_WINDOW_MS). */
  readonly windowMs?: number;
  /** Most nonces remembered at once; beyond it new connections are refused until old ones expire. */
  readonly maxNonces?: number;
}

export class AuthVerifier {
  private readonly seen = new Map<string, number>();
  private readonly windowMs: number;
  private readonly maxNonces: number;

  constructor(
    private readonly token: string,
    options: AuthVerifierOptions = {},
  ) {
    if (token.length < MIN_TOKEN_LENGTH) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `the token must be at least ${MIN_TOKEN_LENGTH} characters long`,
      );
    }
    this.windowMs = options.windowMs ?? AUTH_CLOCK_WINDOW_MS;
    this.maxNonces = options.maxNonces ?? 100_000;
  }

  verify(header: string | undefined, now = Date.now()): AuthResult {
    if (header === undefined) return { ok: false, reason: `no ${AUTH_HEADER} header` };
    const parts = header.split(' ');
    const [scheme, encodedName, timestampText, nonce, signature] = parts;
    if (parts.length !== 5 || scheme !== SCHEME || !/^\d{1,15}$/.test(timestampText ?? '')) {
      return { ok: false, reason: 'malformed authentication header' };
    }
    if (!/^[0-9a-f]{32}$/.test(nonce ?? '') || !/^[0-9a-f]{64}$/.test(signature ?? '')) {
      return { ok: false, reason: 'malformed authentication header' };
    }
    const workerName = Buffer.from(encodedName ?? '', 'base64url').toString('utf8');
    const timestamp = Number(timestampText);
    const expected = mac(this.token, workerName, timestamp, nonce as string, PROTOCOL_VERSION.major);
    if (!timingSafeEqual(expected, Buffer.from(signature as string, 'hex'))) {
      return { ok: false, reason: 'wrong token (or another protocol major version)' };
    }
    if (Math.abs(now - timestamp) > this.windowMs) {
      return {
        ok: false,
        reason: `timestamp ${Math.round((now - timestamp) / 1000)} s off (window ${this.windowMs / 1000} s)`,
      };
    }
    this.forgetExpired(now);
    if (this.seen.has(nonce as string)) return { ok: false, reason: 'replayed nonce' };
    if (this.seen.size >= this.maxNonces) return { ok: false, reason: 'too many connection attempts' };
    this.seen.set(nonce as string, timestamp + this.windowMs);
    return { ok: true, workerName };
  }

  private forgetExpired(now: number): void {
    for (const [nonce, expiresAt] of this.seen) {
      // A nonce matters only while its timestamp is inside the window. Insertion order is roughly
      // expiry order, so stop at the first one still live (a few stragglers just wait a little longer).
      if (expiresAt >= now) break;
      this.seen.delete(nonce);
    }
  }
}
