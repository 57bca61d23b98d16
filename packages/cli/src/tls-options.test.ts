import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientTlsFrom, peerTlsFrom, serverTlsFrom } from './tls-options.js';

// The files' contents stand in for PEM texts: peerTlsFrom only picks and reads them (the worker tries
// them in a TLS handshake at start; coordinator/src/tls.test.ts covers that with real certificates).
let dir: string;
/** A PEM block's shape around a name: enough for the flags' check, not for a TLS handshake. */
const pemText = (name: string) => `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n`;
const file = (name: string) => join(dir, name);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'callosum-peer-tls-flags-'));
  for (const name of ['ca', 'peer-cert', 'peer-key', 'cert', 'key'])
    await writeFile(file(name), pemText(name));
  await writeFile(file('empty'), '');
  await writeFile(file('blank'), ' \n\t\n');
  await writeFile(file('text'), 'not a certificate\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('peerTlsFrom', () => {
  it("takes the peers' CA with the worker's own peer certificate, or else its --tls-cert and --tls-key", () => {
    expect(peerTlsFrom({})).toBeUndefined();
    expect(
      peerTlsFrom({
        peerTlsCa: file('ca'),
        peerTlsCert: file('peer-cert'),
        peerTlsKey: file('peer-key'),
        tlsCert: file('cert'),
        tlsKey: file('key'),
      }),
    ).toEqual({ ca: pemText('ca'), cert: pemText('peer-cert'), key: pemText('peer-key') });
    expect(peerTlsFrom({ peerTlsCa: file('ca'), tlsCert: file('cert'), tlsKey: file('key') })).toEqual({
      ca: pemText('ca'),
      cert: pemText('cert'),
      key: pemText('key'),
    });
  });

  it('never mixes a peer certificate with the --tls key, and names what is missing', () => {
    expect(() =>
      peerTlsFrom({ peerTlsCa: file('ca'), peerTlsCert: file('peer-cert'), tlsKey: file('key') }),
    ).toThrow("--peer-tls-ca needs this worker's certificate and key: --peer-tls-cert and --peer-tls-key");
    expect(() => peerTlsFrom({ peerTlsKey: file('peer-key') })).toThrow(
      "--peer-tls-key needs --peer-tls-ca (the peers' CA)",
    );
    expect(() =>
      peerTlsFrom({ peerTlsCa: file('nope'), tlsCert: file('cert'), tlsKey: file('key') }),
    ).toThrow(/^--peer-tls-ca: cannot read .*nope/);
  });
});

describe('PEM files of the TLS flags', () => {
  it('refuses an empty, blank or PEM-less file for every TLS flag, naming the flag and the file', () => {
    const cases: [string, (path: string) => unknown][] = [
      ['--tls-cert', (path) => serverTlsFrom({ tlsCert: path, tlsKey: file('key') })],
      ['--tls-key', (path) => serverTlsFrom({ tlsCert: file('cert'), tlsKey: path })],
      [
        '--tls-client-ca',
        (path) => serverTlsFrom({ tlsCert: file('cert'), tlsKey: file('key'), tlsClientCa: path }),
      ],
      ['--tls-ca', (path) => clientTlsFrom({ tlsCa: path })],
      ['--tls-cert', (path) => clientTlsFrom({ tlsCert: path, tlsKey: file('key') })],
      ['--tls-key', (path) => clientTlsFrom({ tlsCert: file('cert'), tlsKey: path })],
      [
        '--peer-tls-ca',
        (path) => peerTlsFrom({ peerTlsCa: path, tlsCert: file('cert'), tlsKey: file('key') }),
      ],
      [
        '--peer-tls-cert',
        (path) => peerTlsFrom({ peerTlsCa: file('ca'), peerTlsCert: path, peerTlsKey: file('key') }),
      ],
      [
        '--peer-tls-key',
        (path) => peerTlsFrom({ peerTlsCa: file('ca'), peerTlsCert: file('cert'), peerTlsKey: path }),
      ],
    ];
    for (const [flag, read] of cases) {
      for (const [name, why] of [
        ['empty', 'is empty: expected a PEM file'],
        ['blank', 'is empty: expected a PEM file'],
        ['text', 'holds no PEM block (no "-----BEGIN" line)'],
      ] as const) {
        expect(() => read(file(name)), `${flag} ${name}`).toThrow(`${flag}: ${file(name)} ${why}`);
      }
    }
    expect(serverTlsFrom({ tlsCert: file('cert'), tlsKey: file('key'), tlsClientCa: file('ca') })).toEqual({
      cert: pemText('cert'),
      key: pemText('key'),
      clientCa: pemText('ca'),
    });
  });
});
