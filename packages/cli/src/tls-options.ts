import { readFileSync } from 'node:fs';
import { pemProblem } from '@callosum/core';
import { InvalidArgumentError, type Option } from 'commander';
import { envOption } from './env-options.js';

export interface TlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsClientCa?: string;
}

export interface PeerTlsFlags {
  peerTlsCa?: string;
  peerTlsCert?: string;
  peerTlsKey?: string;
}

/**
 * The PEM text of a flag's file. An empty file, or one with no PEM block, is refused here, naming the
 * flag and the file: Node takes an empty certificate, key or CA without a word (a coordinator that no
 * client can handshake with; an empty CA is no CA, so Node's public roots would verify clients).
 */
function readPem(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InvalidArgumentError(`${flag}: cannot read ${path}: ${(error as Error).message}`);
  }
  const problem = pemProblem(text, 'a PEM file');
  if (problem !== undefined) throw new InvalidArgumentError(`${flag}: ${path} ${problem}`);
  return text;
}

/** Coordinator: serve wss:// with a certificate; require client certificates from a CA (mutual TLS). */
export function serverTlsOptions(): Option[] {
  return [
    envOption('--tls-cert <file>', 'serve wss:// with this certificate (PEM)'),
    envOption('--tls-key <file>', 'private key of --tls-cert (PEM)'),
    envOption('--tls-client-ca <file>', 'require worker certificates signed by this CA (mutual TLS)'),
  ];
}

export function serverTlsFrom(flags: TlsFlags): { cert: string; key: string; clientCa?: string } | undefined {
  if (flags.tlsCert === undefined && flags.tlsKey === undefined) {
    if (flags.tlsClientCa !== undefined)
      throw new InvalidArgumentError('--tls-client-ca needs --tls-cert and --tls-key');
    return undefined;
  }
  if (flags.tlsCert === undefined || flags.tlsKey === undefined) {
    throw new InvalidArgumentError('--tls-cert and --tls-key go together');
  }
  return {
    cert: readPem(flags.tlsCert, '--tls-cert'),
    key: readPem(flags.tlsKey, '--tls-key'),
    ...(flags.tlsClientCa === undefined ? {} : { clientCa: readPem(flags.tlsClientCa, '--tls-client-ca') }),
  };
}

/** Worker: trust a CA for wss://, and present a certificate for mutual TLS. */
export function clientTlsOptions(): Option[] {
  return [
    envOption('--tls-ca <file>', "CA that signed the coordinator's certificate (PEM)"),
    envOption('--tls-cert <file>', "this worker's certificate for mutual TLS (PEM)"),
    envOption('--tls-key <file>', 'private key of --tls-cert (PEM)'),
  ];
}

export function clientTlsFrom(flags: TlsFlags): { ca?: string; cert?: string; key?: string } | undefined {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new InvalidArgumentError('--tls-cert and --tls-key go together');
  }
  const tls = {
    ...(flags.tlsCa === undefined ? {} : { ca: readPem(flags.tlsCa, '--tls-ca') }),
    ...(flags.tlsCert === undefined ? {} : { cert: readPem(flags.tlsCert, '--tls-cert') }),
    ...(flags.tlsKey === undefined ? {} : { key: readPem(flags.tlsKey, '--tls-key') }),
  };
  return Object.keys(tls).length === 0 ? undefined : tls;
}

/** Worker, ring topology: TLS between peers, with the peers' own CA. */
export function peerTlsOptions(): Option[] {
  return [
    envOption(
      '--peer-tls-ca <file>',
      'ring topology: reduce over TLS with peers whose certificates this CA signed (PEM; coordinator --peer-tls)',
    ),
    envOption(
      '--peer-tls-cert <file>',
      "this worker's certificate towards its peers (PEM; default --tls-cert)",
    ),
    envOption('--peer-tls-key <file>', 'private key of --peer-tls-cert (PEM; default --tls-key)'),
  ];
}

/**
 * The peers' CA and this worker's certificate towards them: its own peer certificate, or by default the
 * one it presents to the coordinator (a deployment whose workers already hold one signed by the same CA).
 */
export function peerTlsFrom(
  flags: PeerTlsFlags & TlsFlags,
): { ca: string; cert: string; key: string } | undefined {
  if (flags.peerTlsCa === undefined) {
    const stray =
      flags.peerTlsCert !== undefined
        ? '--peer-tls-cert'
        : flags.peerTlsKey !== undefined
          ? '--peer-tls-key'
          : undefined;
    if (stray !== undefined) throw new InvalidArgumentError(`${stray} needs --peer-tls-ca (the peers' CA)`);
    return undefined;
  }
  const ownPeerCertificate = flags.peerTlsCert !== undefined || flags.peerTlsKey !== undefined;
  const [certFlag, keyFlag] = ownPeerCertificate
    ? ['--peer-tls-cert', '--peer-tls-key']
    : ['--tls-cert', '--tls-key'];
  const cert = ownPeerCertificate ? flags.peerTlsCert : flags.tlsCert;
  const key = ownPeerCertificate ? flags.peerTlsKey : flags.tlsKey;
  if (cert === undefined || key === undefined) {
    throw new InvalidArgumentError(
      `--peer-tls-ca needs this worker's certificate and key: ${certFlag} and ${keyFlag}` +
        (ownPeerCertificate ? '' : ' (or --peer-tls-cert and --peer-tls-key)'),
    );
  }
  return {
    ca: readPem(flags.peerTlsCa, '--peer-tls-ca'),
    cert: readPem(cert, certFlag),
    key: readPem(key, keyFlag),
  };
}
