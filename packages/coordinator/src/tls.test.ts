import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist, type MnistDataset } from '@callosum/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startCoordinator } from './coordinator.js';
import { inlineWorker } from './test-support/inline-worker.js';

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
  selfSigned('rogue', '/CN=rogue');
  for (const file of [
    'ca.pem',
    'server.pem',
    'server.key',
    'worker.pem',
    'worker.key',
    'rogue.pem',
    'rogue.key',
  ]) {
    pem[file] = await readFile(join(dir, file), 'utf8');
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function start(clientCa?: string) {
  const outDir = join(dir, `run-${Math.random().toString(36).slice(2)}`);
  return startCoordinator({
    outDir,
    dataset,
    training,
    log: () => {},
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

describe('TLS', () => {
  it("trains over wss:// with a worker that trusts the coordinator's CA, and refuses one that does not", async () => {
    const coordinator = await start();
    expect(coordinator.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    expect(await handshake(coordinator.url, {})).toMatch(/self[- ]signed|unable to verify|certificate/i);
    const worker = inlineWorker(coordinator.url, { tls: { ca: pem['ca.pem'] as string } });
    expect((await coordinator.result).steps).toBe(5);
    expect((await worker).exitCode).toBe(0);
  });

  it('with mutual TLS, refuses a client with no certificate or a certificate the CA did not sign', async () => {
    const coordinator = await start(pem['ca.pem']);
    const ca = pem['ca.pem'] as string;
    expect(await handshake(coordinator.url, { ca })).not.toBe('open');
    expect(
      await handshake(coordinator.url, {
        ca,
        cert: pem['rogue.pem'] as string,
        key: pem['rogue.key'] as string,
      }),
    ).not.toBe('open');
    const tls = { ca, cert: pem['worker.pem'] as string, key: pem['worker.key'] as string };
    const worker = inlineWorker(coordinator.url, { tls });
    expect((await coordinator.result).steps).toBe(5);
    expect((await worker).exitCode).toBe(0);
  });
});
