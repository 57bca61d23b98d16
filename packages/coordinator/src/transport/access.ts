import type { IncomingMessage } from 'node:http';
import { AUTH_HEADER, AuthVerifier, CallosumError, ErrorCodes, isLoopbackHost } from '@callosum/core';
import type { TransportOptions } from './server.js';

/**
 * Who may connect, as the transport's `authenticate`: with a token, workers that prove they know it;
 * without one, anyone who can reach the address — acceptable on loopback, refused elsewhere unless the
 * operator insists.
 */
export function accessCheck(
  host: string,
  token: string | undefined,
  insecure: boolean,
  log: (line: string) => void,
): TransportOptions['authenticate'] {
  if (token !== undefined) {
    const verifier = new AuthVerifier(token);
    return (request) => verifier.verify(authHeaderOf(request));
  }
  if (!isLoopbackHost(host)) {
    if (!insecure) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        // The CLI's words, and startCoordinator's options (as the run directory's messages name both);
        // fit, which has neither, refuses such a host itself in its own words.
        `refusing to listen on ${host} without a token: set CALLOSUM_TOKEN (or --token-file), or pass --insecure ` +
          '(token, or insecure: true, from a program)',
      );
    }
    log(
      `coordinator: WARNING: listening on ${host} without a token: anyone who can reach it can join and send gradients`,
    );
  }
  let warned = false;
  return (request) => {
    // A worker given a token expects a coordinator that checks it: most likely this one was meant to
    // have the same token and was started without it, so anyone who can reach it may join.
    if (authHeaderOf(request) !== undefined && !warned) {
      warned = true;
      log(
        'coordinator: warning: a worker sent a token, but this coordinator has none (CALLOSUM_TOKEN, --token-file): ' +
          `it admits any worker that can reach ${host}; start it with the workers' token to admit only them`,
      );
    }
    return { ok: true };
  };
}

/** The worker's proof from an upgrade request, if it sent one. */
function authHeaderOf(request: IncomingMessage): string | undefined {
  const value = request.headers[AUTH_HEADER];
  return Array.isArray(value) ? value[0] : value;
}
