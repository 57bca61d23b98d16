import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConnectionOptions, connect as connectTls } from 'node:tls';
import {
  AUTH_HEADER,
  createAuthHeader,
  isCallosumError,
  loadMnist,
  loadModel,
  type MnistDataset,
  readFlatWeights,
} from '@callosum/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Coordinator, startCoordinator } from './coordinator.js';
import { inlineWorker } from './test-support/inline-worker.js';
import { peerAddresses, startWorkerProcess } from './test-support/worker-processes.js';

// Real TLS on loopback with certificates made by the openssl command for this test: a CA, a server
// certificate for 127.0.0.1, a worker certificate from the CA, and a self-signed "rogue" certificate.
let dir: string;
let dataset: MnistDataset;
const pem: Record<string, string> = {};
const training = { model: { name: 'mlp', options: { hidden: [8] } }, batchSize: 16, maxSteps: 5, seed: 1 };

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed certificate `<name>.pem` with its key `<name>.key`. */
function selfSigned(name: string, subject: string): void {
  openssl(
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    '1',
    '-subj',
    subject,
  );
}

/** A certificate `<name>.pem` signed by the test CA, with extra `openssl x509` arguments. */
function signedByCa(name: string, subject: string, ...extra: string[]): void {
  openssl('req', '-new', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '1',
    ...extra,
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'callosum-tls-'));
  dataset = await loadMnist();
  selfSigned('ca', '/CN=callosum-test-ca');
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  signedByCa('server', '/CN=127.0.0.1', '-extfile', 'server.ext');
  signedByCa('worker', '/CN=worker');
  await writeFile(join(dir, 'client-only.ext'), 'extendedKeyUsage=clientAuth\n');
  signedByCa('client-only', '/CN=client-only', '-extfile', 'client-only.ext');
  await writeFile(join(dir, 'server-only.ext'), 'extendedKeyUsage=serverAuth\n');
  signedByCa('server-only', '/CN=server-only', '-extfile', 'server-only.ext');
  selfSigned('rogue', '/CN=rogue');
  for (const file of [
    'ca.pem',
    'server.pem',
    'server.key',
    'worker.pem',
    'worker.key',
    'client-only.pem',
    'client-only.key',
    'server-only.pem',
    'server-only.key',
    'rogue.pem',
    'rogue.key',
  ]) {
    pem[file] = await readFile(join(dir, file), 'utf8');
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function start(clientCa?: string, log: (line: string) => void = () => {}) {
  const outDir = join(dir, `run-${Math.random().toString(36).slice(2)}`);
  return startCoordinator({
    outDir,
    dataset,
    training,
    log,
    tls: {
      cert: pem['server.pem'] as string,
      key: pem['server.key'] as string,
      ...(clientCa ? { clientCa } : {}),
    },
  });
}

function handshake(url: string, options: WebSocket.ClientOptions): Promise<'open' | string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, options);
    socket.once('open', () => {
      resolve('open');
      socket.terminate();
    });
    socket.once('error', (error) => resolve(error.message));
  });
}

/** A GET over HTTPS with these TLS options: the status, its reason phrase and the body. */
function httpsGet(
  url: string,
  options: { ca: string; cert: string; key: string },
): Promise<{ status: number | undefined; message: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, options, (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on('end', () =>
          resolve({ status: response.statusCode, message: response.statusMessage, body }),
        );
      })
      .on('error', reject);
  });
}

describe('TLS', () => {
  it("trains over wss:// with a worker that trusts the coordinator's CA, and refuses one that does not", async () => {
    const coordinator = await start();
    expect(coordinator.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    expect(await handshake(coordinator.url, {})).toMatch(/self[- ]signed|unable to verify|certificate/i);
    // A worker without the CA, or dialling a name the certificate does not carry, stops at once: retrying
    // cannot change a certificate.
    const untrusting = await inlineWorker(coordinator.url, { giveUpAfterMs: 60_000 });
    expect(untrusting).toMatchObject({
      exitCode: 1,
      reason: expect.stringMatching(/^TLS: .*unable to verify.*--tls-ca/),
    });
    const byName = await inlineWorker(coordinator.url.replace('127.0.0.1', 'localhost'), {
      tls: { ca: pem['ca.pem'] as string },
      giveUpAfterMs: 60_000,
    });
    expect(byName).toMatchObject({
      exitCode: 1,
      reason: expect.stringMatching(/^TLS: .*ERR_TLS_CERT_ALTNAME_INVALID/),
    });
    const worker = inlineWorker(coordinator.url, { tls: { ca: pem['ca.pem'] as string } });
    expect((await coordinator.result).steps).toBe(5);
    expect((await worker).exitCode).toBe(0);
  });

  it("refuses to start with a key that is not its certificate's, or a certificate that is not PEM, naming the options", async () => {
    const outDir = join(dir, 'bad-tls');
    for (const tls of [
      { cert: pem['server.pem'] as string, key: pem['worker.key'] as string },
      { cert: 'not a certificate', key: pem['server.key'] as string },
      {
        cert: '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n',
        key: pem['server.key'] as string,
      },
    ]) {
      const refusal = await startCoordinator({ outDir, dataset, training, log: () => {}, tls }).then(
        () => undefined,
        (error: Error) => error,
      );
      expect(isCallosumError(refusal, 'INVALID_ARGUMENT')).toBe(true);
      expect(refusal?.message).toMatch(
        /TLS certificate, key or client CA \(--tls-cert, --tls-key, --tls-client-ca\) cannot be used: .*(key values mismatch|holds no PEM block|bad base64|no start line|ASN1)/i,
      );
    }
  });

  it('refuses to start with an empty certificate, key or client CA: Node would take them, and an empty CA is no CA', async () => {
    // An empty `ca` is falsy: Node would verify client certificates against its public root CAs.
    const outDir = join(dir, 'empty-tls');
    const cert = pem['server.pem'] as string;
    const key = pem['server.key'] as string;
    for (const [tls, why] of [
      [{ cert, key, clientCa: '' }, 'the client CA is empty'],
      [{ cert, key, clientCa: ' \n' }, 'the client CA is empty'],
      [{ cert, key, clientCa: 'no CA here' }, 'the client CA holds no PEM block'],
      [{ cert: '', key }, 'the certificate is empty'],
      [{ cert, key: '' }, 'the key is empty'],
    ] as const) {
      const refusal = await startCoordinator({ outDir, dataset, training, log: () => {}, tls }).then(
        () => undefined,
        (error: Error) => error,
      );
      expect(isCallosumError(refusal, 'INVALID_ARGUMENT')).toBe(true);
      expect(refusal?.message).toContain(
        `TLS certificate, key or client CA (--tls-cert, --tls-key, --tls-client-ca) cannot be used: ${why}`,
      );
    }
  });

  it('tells a worker that dials ws:// that the port serves TLS, and the worker stops at once; the log says so', async () => {
    const lines: string[] = [];
    const coordinator = await start(undefined, (line) => lines.push(line));
    const plainUrl = coordinator.url.replace(/^wss:/, 'ws:');
    // What any plain HTTP client is answered, unencrypted, where OpenSSL would only drop the connection.
    const answer = await new Promise<string>((resolve, reject) => {
      const { hostname, port } = new URL(plainUrl);
      const socket: Socket = connect(Number(port), hostname, () =>
        socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
      );
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 Plain HTTP to a TLS port: use wss:\/\/ or https:\/\/\r\n/);
    const started = Date.now();
    const worker = await inlineWorker(plainUrl, { giveUpAfterMs: 60_000 });
    expect(worker).toMatchObject({
      exitCode: 1,
      reason: `the coordinator at ${plainUrl} serves TLS: connect with wss:// (and --tls-ca if a private CA signed its certificate)`,
    });
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(lines.join('\n')).toMatch(
      /refused connection from 127\.0\.0\.1 \(0\): TLS: the client spoke plain HTTP or WebSocket \(ws:\/\/, http:\/\/\) to this TLS port: it must use wss:\/\//,
    );
    await coordinator.stop('test over');
  }, 30_000);

  it('with mutual TLS, refuses a client with no certificate or a certificate the CA did not sign, saying why', async () => {
    const refusals: string[] = [];
    const coordinator = await start(pem['ca.pem'], (line) => refusals.push(line));
    const ca = pem['ca.pem'] as string;
    const rogue = { ca, cert: pem['rogue.pem'] as string, key: pem['rogue.key'] as string };
    expect(await handshake(coordinator.url, { ca })).toBe('Unexpected server response: 403');
    expect(await handshake(coordinator.url, rogue)).toBe('Unexpected server response: 403');
    // Every route, open ones included, answers such a client 403 with the reason, and nothing else.
    const health = await httpsGet(`${coordinator.url.replace('wss:', 'https:')}/healthz`, rogue);
    expect(health).toMatchObject({
      status: 403,
      message: expect.stringMatching(/^Client certificate refused: [A-Z_]+$/),
    });
    expect(health.body).not.toContain('ok');
    // A worker so refused stops at once, naming the refusal: retrying cannot change its certificate.
    const started = Date.now();
    const refusedWorker = await inlineWorker(coordinator.url, { tls: rogue, giveUpAfterMs: 60_000 });
    expect(refusedWorker).toMatchObject({
      exitCode: 1,
      reason: expect.stringMatching(
        /^the coordinator refused this worker's TLS client certificate \(HTTP 403 Client certificate refused: [A-Z_]+\): give --tls-cert/,
      ),
    });
    expect(Date.now() - started).toBeLessThan(30_000);
    const named = refusals.filter((line) => line.includes("TLS: the client's certificate:"));
    expect(named.filter((line) => line.endsWith('certificate: none given'))).toHaveLength(1);
    expect(named.filter((line) => line.endsWith('certificate: DEPTH_ZERO_SELF_SIGNED_CERT'))).toHaveLength(3);
    const tls = { ca, cert: pem['worker.pem'] as string, key: pem['worker.key'] as string };
    const worker = inlineWorker(coordinator.url, { tls });
    expect((await coordinator.result).steps).toBe(5);
    expect((await worker).exitCode).toBe(0);
  });
});

describe('mutual TLS: what a refused client can reach', () => {
  const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  const statusLines = (text: string) => text.split('\r\n').filter((line) => line.startsWith('HTTP/1.1 '));

  // No token: a request that got past the certificate check would be answered (/healthz 200, /status 200).
  it('answers 403 to every request of the connection, also on a resumed TLS session, and drops an idle one', async () => {
    const refusals: string[] = [];
    const coordinator = await start(pem['ca.pem'], (line) => {
      if (line.includes("TLS: the client's certificate:")) refusals.push(line);
    });
    const ca = pem['ca.pem'] as string;
    const rogue = { ca, cert: pem['rogue.pem'] as string, key: pem['rogue.key'] as string };
    const port = coordinator.port;

    const first = await rawTls(port, { ca }, GET('/healthz'));
    expect(statusLines(first.text)).toEqual(['HTTP/1.1 403 Client certificate refused: none given']);
    // Node counts a TLS 1.3 session resumed from that connection as authorized (nodejs/node#35317).
    const resumed = await rawTls(port, { ca, session: first.session }, GET('/status'));
    expect(resumed.reused).toBe(true);
    expect(statusLines(resumed.text)).toEqual(['HTTP/1.1 403 Client certificate refused: none given']);

    const pipelined = await rawTls(port, rogue, GET('/healthz') + GET('/status') + GET('/readyz'));
    expect(statusLines(pipelined.text).length).toBeGreaterThanOrEqual(1);
    for (const line of statusLines(pipelined.text)) expect(line).toMatch(/^HTTP\/1\.1 403 /);

    const idle = await rawTls(port, rogue, '');
    expect(idle.text).toBe('');
    expect(idle.openMs).toBeGreaterThanOrEqual(9_000);
    expect(idle.openMs).toBeLessThan(20_000);
    // One refusal per connection, however many requests it made.
    expect(refusals).toHaveLength(4);
    await coordinator.stop('test over');
  }, 60_000);
});

/**
 * One TLS connection to `port` on loopback: writes `payload` once the handshake is done, and returns
 * what it read until the server closed it, the session it was given, and whether it resumed one.
 */
function rawTls(
  port: number,
  options: ConnectionOptions,
  payload: string,
): Promise<{ text: string; session: Buffer | undefined; reused: boolean; openMs: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    let text = '';
    let session: Buffer | undefined;
    let reused = false;
    const socket = connectTls({ host: '127.0.0.1', port, ...options });
    socket.on('session', (ticket: Buffer) => {
      session ??= ticket;
    });
    socket.on('secureConnect', () => {
      reused = socket.isSessionReused();
      if (payload !== '') socket.write(payload);
    });
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve({ text, session, reused, openMs: Date.now() - started }));
  });
}

describe('TLS connection limits', () => {
  it('drops connections beyond the rate before any handshake, and records each drop once', async () => {
    const log: string[] = [];
    const coordinator = await startCoordinator({
      outDir: join(dir, `limits-${Math.random().toString(36).slice(2)}`),
      dataset,
      training,
      log: (line) => log.push(line),
      connectionRate: { perSecond: 0.001, burst: 3 },
      tls: { cert: pem['server.pem'] as string, key: pem['server.key'] as string },
    });
    const port = Number(new URL(coordinator.url).port);
    // Ten connections at once that never start a handshake: three are let in, seven dropped.
    const sockets = await Promise.all(
      Array.from(
        { length: 10 },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = connect(port, '127.0.0.1', () => resolve(socket));
            socket.on('error', () => {});
          }),
      ),
    );
    // Once seven are refused, a moment more for any eighth refusal (or echo of a drop) to show.
    const refused = () => log.filter((line) => line.includes('refused connection from'));
    await expect.poll(() => refused().length, { timeout: 10_000 }).toBeGreaterThanOrEqual(7);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refusals = refused();
    expect(refusals.filter((line) => line.includes('(0): too many connection attempts'))).toHaveLength(7);
    // A dropped connection's TLS error is only the echo of the drop: not a second refusal.
    expect(refusals).toHaveLength(7);
    for (const socket of sockets) socket.destroy();
    await coordinator.stop('test over');
  });
});

// A ring run whose workers reduce over TLS among themselves: real worker processes with the test CA's
// worker certificate as their peer certificate, their peer ports probed while the run waits for its
// third worker.
describe('TLS between ring peers', () => {
  // Peers are known by their CA, not their names (peer-links.ts), so the probes skip the name check
  // too. Node wants Error | undefined from it, where ws's types say boolean.
  const anyName = {
    checkServerIdentity: (() => undefined) as unknown as NonNullable<
      WebSocket.ClientOptions['checkServerIdentity']
    >,
  };
  const peerTls = () => ({
    ca: pem['ca.pem'] as string,
    cert: pem['worker.pem'] as string,
    key: pem['worker.key'] as string,
  });

  const token = 'peer-tls-test-token-0123456789abcdef';

  async function ringRun(peerTlsOn: boolean, log: (line: string) => void = () => {}) {
    return startCoordinator({
      outDir: join(dir, `ring-${Math.random().toString(36).slice(2)}`),
      dataset,
      training,
      token,
      topology: 'ring',
      peerTls: peerTlsOn,
      minWorkers: 3,
      log,
    });
  }

  async function finalWeights(coordinator: Coordinator): Promise<Float32Array> {
    const model = await loadModel((await coordinator.result).modelDir);
    const weights = readFlatWeights(model);
    model.dispose();
    return weights;
  }

  it('reduces over mutual TLS with the token on top, refuses plain, certificate-less and foreign peers and a plain worker, and computes the same weights', async () => {
    const log: string[] = [];
    const coordinator = await ringRun(true, (line) => log.push(line));
    const exits = ['tls-1', 'tls-2'].map((name) =>
      startWorkerProcess(coordinator.url, name, { token, peerTls: peerTls() }),
    );
    const [address] = await peerAddresses(coordinator, 2, token);
    const ca = pem['ca.pem'] as string;
    const peer = `wss://${address}`;
    const proof = { headers: { [AUTH_HEADER]: createAuthHeader(token, 'probe') } };
    // With a certificate the CA signed and the token, a probe opens: the refusals below are about one of them.
    expect(await handshake(peer, { ...peerTls(), ...anyName, ...proof })).toBe('open');
    expect(await handshake(peer, { ...peerTls(), ...anyName })).toMatch(/Unexpected server response: 401/);
    // No TLS: refused in the handshake, answered only the fixed 400 that says the port serves TLS.
    const plainOutcome = await handshake(`ws://${address}`, proof);
    expect(plainOutcome).toBe('Unexpected server response: 400');
    // No certificate, or a self-signed one: answered 403 (with the reason) before the token is looked at.
    const rogue = { ca, cert: pem['rogue.pem'] as string, key: pem['rogue.key'] as string };
    for (const options of [
      { ca, ...anyName, ...proof },
      { ...rogue, ...anyName, ...proof },
    ]) {
      expect(await handshake(peer, options)).toBe('Unexpected server response: 403');
    }

    expect(await startWorkerProcess(coordinator.url, 'plain', { token })).toBe(1);
    expect(log.find((line) => line.includes('worker plain'))).toContain(
      "refused: this ring's workers reduce over TLS (coordinator --peer-tls)",
    );
    exits.push(startWorkerProcess(coordinator.url, 'tls-3', { token, peerTls: peerTls() }));
    expect((await coordinator.result).steps).toBe(5);
    expect(await Promise.all(exits)).toEqual([0, 0, 0]);

    const plain = await ringRun(false);
    const plainExits = ['a', 'b', 'c'].map((name) => startWorkerProcess(plain.url, name, { token }));
    expect(Buffer.from((await finalWeights(coordinator)).buffer)).toEqual(
      Buffer.from((await finalWeights(plain)).buffer),
    );
    expect(await Promise.all(plainExits)).toEqual([0, 0, 0]);
  }, 120_000);

  it('stops a worker at start whose peer certificate the CA did not sign, or may not serve or dial with, naming why', async () => {
    const ca = pem['ca.pem'] as string;
    for (const [name, reason] of [
      ['rogue', /the dialling side refused: self-signed certificate/],
      ['client-only', /the dialling side refused: unsuitable certificate purpose/],
      // Refused by the listening side, after the dialling side counts itself connected (TLS 1.3).
      ['server-only', /the listening side refused: TLS: the client's certificate: INVALID_PURPOSE/],
    ] as const) {
      const peerTlsOf = { ca, cert: pem[`${name}.pem`] as string, key: pem[`${name}.key`] as string };
      await expect(inlineWorker('ws://127.0.0.1:1', { peerTls: peerTlsOf })).rejects.toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(reason) }),
      );
    }
    const mismatched = { ...peerTls(), key: pem['rogue.key'] as string };
    await expect(inlineWorker('ws://127.0.0.1:1', { peerTls: mismatched })).rejects.toThrow(
      /key values mismatch/,
    );
  });

  it('refuses a worker that reduces over TLS from a ring that does not', async () => {
    const log: string[] = [];
    const coordinator = await ringRun(false, (line) => log.push(line));
    expect(await startWorkerProcess(coordinator.url, 'tls', { token, peerTls: peerTls() })).toBe(1);
    expect(log.find((line) => line.includes('worker tls'))).toContain(
      "refused: the worker reduces over TLS (--peer-tls-ca), this ring's workers without",
    );
    await coordinator.stop('test over');
  });
});
