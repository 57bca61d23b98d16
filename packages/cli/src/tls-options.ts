import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Option } from 'commander';
import { envOption } from './env-options.js';

export interface TlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsClientCa?: string;
}

function readPem(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new InvalidArgumentError(`${flag}: cannot read ${path}: ${(error as Error).message}`);
  }
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
  const tls = {
    ...(flags.tlsCa === undefined ? {} : { ca: readPem(flags.tlsCa, '--tls-ca') }),
    ...(flags.tlsCert === undefined ? {} : { cert: readPem(flags.tlsCert, '--tls-cert') }),
    ...(flags.tlsKey === undefined ? {} : { key: readPem(flags.tlsKey, '--tls-key') }),
  };
  return Object.keys(tls).length === 0 ? undefined : tls;
}
