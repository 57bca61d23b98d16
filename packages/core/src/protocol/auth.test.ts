import { describe, expect, it } from 'vitest';
import { AuthVerifier, createAuthHeader } from './auth.js';

const TOKEN = 'a-token-of-at-least-16-chars';

describe('token authentication', () => {
  it('accepts a fresh header made with the same token and names the worker', () => {
    const verifier = new AuthVerifier(TOKEN);
    expect(verifier.verify(createAuthHeader(TOKEN, 'pod-7'))).toEqual({ ok: true, workerName: 'pod-7' });
  });

  it('refuses a missing header, a wrong token, a tampered name and garbage', () => {
    const verifier = new AuthVerifier(TOKEN);
    expect(verifier.verify(undefined)).toMatchObject({ ok: false, reason: /no x-callosum-auth header/ });
    expect(verifier.verify(createAuthHeader('another-token-0123456789', 'pod-7'))).toMatchObject({
      ok: false,
      reason: /wrong token/,
    });
    const parts = createAuthHeader(TOKEN, 'pod-7').split(' ');
    parts[1] = Buffer.from('pod-8').toString('base64url');
    expect(verifier.verify(parts.join(' '))).toMatchObject({ ok: false, reason: /wrong token/ });
    expect(verifier.verify('Bearer hunter2')).toMatchObject({ ok: false, reason: /malformed/ });
  });

  it('refuses an expired or far-future timestamp, and a replayed header', () => {
    const verifier = new AuthVerifier(TOKEN, { windowMs: 60_000 });
    const now = Date.now();
    expect(verifier.verify(createAuthHeader(TOKEN, 'w', now - 61_000), now)).toMatchObject({
      ok: false,
      reason: /61 s off/,
    });
    expect(verifier.verify(createAuthHeader(TOKEN, 'w', now + 120_000), now)).toMatchObject({
      ok: false,
      reason: /off/,
    });
    const header = createAuthHeader(TOKEN, 'w', now);
    expect(verifier.verify(header, now).ok).toBe(true);
    expect(verifier.verify(header, now + 1_000)).toMatchObject({ ok: false, reason: /replayed nonce/ });
  });

  it('forgets nonces once they can no longer pass the time check, and bounds how many it keeps', () => {
    const verifier = new AuthVerifier(TOKEN, { windowMs: 1_000, maxNonces: 2 });
    const start = Date.now();
    expect(verifier.verify(createAuthHeader(TOKEN, 'a', start), start).ok).toBe(true);
    expect(verifier.verify(createAuthHeader(TOKEN, 'b', start), start).ok).toBe(true);
    expect(verifier.verify(createAuthHeader(TOKEN, 'c', start), start)).toMatchObject({
      ok: false,
      reason: /too many/,
    });
    expect(verifier.verify(createAuthHeader(TOKEN, 'd', start + 1_500), start + 1_500).ok).toBe(true);
  });

  it('refuses tokens too short to be secret', () => {
    expect(() => new AuthVerifier('short')).toThrow(/at least 16 characters/);
  });
});
