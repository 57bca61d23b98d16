import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** The cookie a browser gets once it opened a URL with `?token=`. */
export const ACCESS_COOKIE = 'callosum_access';

/** Decides whether a request may read a guarded endpoint; it may set the access cookie on the response. */
export type ReadAccess = (request: IncomingMessage, response: ServerResponse) => boolean;

/**
 * Who may read the endpoints that are not open (status, metrics, the dashboard). Without a token, anyone
 * who can reach the address (a loopback run). With one: `Authorization: Bearer <token>` (what Prometheus
 * scrapers send), the access cookie, or `?token=<token>` in the URL, which also sets the cookie so a
 * browser's later requests (the dashboard's live updates) carry it, as Jupyter does.
 */
export function readAccess(token: string | undefined): ReadAccess {
  if (token === undefined) return () => true;
  const expectedToken = digest(token);
  // The cookie holds a value derived from the token, not the token itself.
  const cookieValue = createHmac('sha256', token).update('callosum read access').digest('base64url');
  const expectedCookie = digest(cookieValue);
  return (request, response) => {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1];
    if (bearer !== undefined && matches(bearer, expectedToken)) return true;
    const cookie = cookieOf(request, ACCESS_COOKIE);
    if (cookie !== undefined && matches(cookie, expectedCookie)) return true;
    const query = new URL(request.url ?? '/', 'http://coordinator').searchParams.get('token');
    if (query === null || !matches(query, expectedToken)) return false;
    const secure = (request.socket as Partial<TLSSocket>).encrypted === true ? '; Secure' : '';
    response.setHeader(
      'set-cookie',
      `${ACCESS_COOKIE}=${cookieValue}; Path=/; HttpOnly; SameSite=Strict${secure}`,
    );
    return true;
  };
}

/** Fixed-length digests, so comparing them takes the same time whatever the guess and its length. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function matches(candidate: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(candidate), expected);
}

function cookieOf(request: IncomingMessage, name: string): string | undefined {
  for (const pair of (request.headers.cookie ?? '').split(';')) {
    const separator = pair.indexOf('=');
    if (separator > 0 && pair.slice(0, separator).trim() === name) return pair.slice(separator + 1).trim();
  }
  return undefined;
}
