import type { IncomingMessage } from 'node:http';
import { AUTH_HEADER, AuthVerifier, CallosumError, ErrorCodes, isLoopbackHost } from '@callosum/core';

/**
 * Who may connect: with a token, workers that prove they know it; without one, anyone who can reach
 * the address — acceptable on loopback, refused elsewhere unless the operator insists.
 */
export function accessVerifier(
  host: string,
  token: string | undefined,
  insecure: boolean,
  log: (line: string) => void,
) {
  if (token !== undefined) return new AuthVerifier(token);
  if (!isLoopbackHost(host)) {
    if (!insecure) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `refusing to listen on ${host} without a token: set CALLOSUM_TOKEN (or --token-file), or pass --insecure`,
      );
    }
    log(
      `coordinator: WARNING: listening on ${host} without a token: anyone who can reach it can join and send gradients`,
    );
  }
  return undefined;
}

/** The worker's proof from an upgrade request, if it sent one. */
export function authHeaderOf(request: IncomingMessage): string | undefined {
  const value = request.headers[AUTH_HEADER];
  return Array.isArray(value) ? value[0] : value;
}
