import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerTlsFrom } from './tls-options.js';

// The files' contents stand in for PEM texts: peerTlsFrom only picks and reads them (the worker tries
// them in a TLS handshake at start; coordinator/src/tls.test.ts covers that with real certificates).
let dir: string;
const file = (name: string) => join(dir, name);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'callosum-peer-tls-flags-'));
  for (const name of ['ca', 'peer-cert', 'peer-key', 'cert', 'key'])
    await writeFile(file(name), `${name} text`);
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
    ).toEqual({ ca: 'ca text', cert: 'peer-cert text', key: 'peer-key text' });
    expect(peerTlsFrom({ peerTlsCa: file('ca'), tlsCert: file('cert'), tlsKey: file('key') })).toEqual({
      ca: 'ca text',
      cert: 'cert text',
      key: 'key text',
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
