import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { CallosumError, createUpgradeServer, ErrorCodes } from '@callosum/core';
import type { PeerTls } from './options.js';

/**
 * How a worker dials a peer over TLS: presenting its own certificate, trusting only the peers' CA. A
 * peer is known by that CA's signature, not its name: peers are reached at the addresses they advertise
 * (pod IPs, chosen at run time), which a certificate shared by the workers cannot name. The token is
 * proved on top.
 */
export function peerTlsClientOptions(tls: PeerTls) {
  return { ca: tls.ca, cert: tls.cert, key: tls.key, checkServerIdentity: () => undefined };
}

/** The server side of a peer port: this worker's certificate, and only peers the same CA signed. */
export function peerTlsServerOptions(tls: PeerTls) {
  return { cert: tls.cert, key: tls.key, clientCa: tls.ca };
}

/**
 * Checks, before the worker connects anywhere, that its peer TLS works: one handshake on loopback
 * between a peer port and a link configured as the ring's are. This catches what would otherwise fail
 * every reduction the worker joins: an unreadable PEM, a key that is not the certificate's, a
 * certificate the CA did not sign or that has expired, one not allowed to serve or to dial (its
 * extended key usage). Throws INVALID_ARGUMENT with the handshake's reason.
 */
export async function checkPeerTls(tls: PeerTls): Promise<void> {
  const reason = await selfHandshakeProblem(tls);
  if (reason !== undefined) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `peer TLS (--peer-tls-ca, and the certificate and key): a TLS handshake of this worker with itself fails: ${reason}`,
    );
  }
}

async function selfHandshakeProblem(tls: PeerTls): Promise<string | undefined> {
  let refusedByServer: (reason: string) => void = () => {};
  let server: ReturnType<typeof createUpgradeServer>;
  try {
    server = createUpgradeServer({
      tls: peerTlsServerOptions(tls),
      onRequest: (_request, response) => response.end(),
      onUpgrade: (_request, socket) => socket.destroy(),
      onTlsRefused: (_from, reason) => refusedByServer(reason),
    });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  const listening = await new Promise<string | undefined>((resolve) => {
    server.once('error', (error) => resolve(`cannot listen on loopback for the check: ${error.message}`));
    server.listen(0, '127.0.0.1', () => resolve(undefined));
  });
  if (listening !== undefined) return listening;
  const { port } = server.address() as AddressInfo;
  // Each side decides on the other's certificate; in TLS 1.3 the server's verdict on the client's comes
  // after the client already counts itself connected. So: both accepted, or the first refusal.
  const serverAccepted = new Promise<void>((resolve, reject) => {
    server.once('secureConnection', () => resolve());
    refusedByServer = (reason) => reject(new Error(`the listening side refused: ${reason}`));
  });
  const clientAccepted = new Promise<void>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...peerTlsClientOptions(tls) });
    socket.once('secureConnect', () => resolve());
    socket.once('error', (error) => reject(new Error(`the dialling side refused: ${error.message}`)));
  });
  try {
    await Promise.all([serverAccepted, clientAccepted]);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
