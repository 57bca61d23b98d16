import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist, type MnistDataset } from '@callosum/core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Coordinator, startCoordinator } from '../coordinator.js';
import { ACCESS_COOKIE } from './read-access.js';

const token = 'read-access-test-token-0123456789';
let dataset: MnistDataset;
let coordinator: Coordinator | undefined;
let outDir: string | undefined;

beforeAll(async () => {
  dataset = await loadMnist();
});
afterEach(async () => {
  await coordinator?.stop('test over');
  coordinator = undefined;
  if (outDir !== undefined) await rm(outDir, { recursive: true, force: true });
});

/** A real coordinator on loopback, waiting for workers that never come: its endpoints answer meanwhile. */
async function coordinatorWith(runToken: string | undefined): Promise<string> {
  outDir = await mkdtemp(join(tmpdir(), 'callosum-read-access-'));
  coordinator = await startCoordinator({
    outDir,
    dataset,
    ...(runToken === undefined ? {} : { token: runToken }),
    training: { model: { name: 'mlp', options: { hidden: [8] } }, maxSteps: 1 },
    log: () => {},
  });
  coordinator.result.catch(() => {});
  return `http://127.0.0.1:${coordinator.port}`;
}

async function statusOf(url: string, headers: Record<string, string> = {}): Promise<number> {
  const response = await fetch(url, { headers });
  await response.arrayBuffer();
  return response.status;
}

describe('read access to the HTTP endpoints', () => {
  it('with a token: /status and /metrics need it (bearer, or the cookie ?token= sets); the probes stay open', async () => {
    const base = await coordinatorWith(token);
    for (const path of ['/status', '/metrics']) {
      expect(await statusOf(`${base}${path}`), path).toBe(401);
      expect(await statusOf(`${base}${path}`, { authorization: `Bearer ${token}x` }), path).toBe(401);
      expect(await statusOf(`${base}${path}`, { authorization: `Basic ${token}` }), path).toBe(401);
      expect(await statusOf(`${base}${path}?token=wrong`), path).toBe(401);
      expect(await statusOf(`${base}${path}`, { cookie: `${ACCESS_COOKIE}=forged` }), path).toBe(401);
      expect(await statusOf(`${base}${path}`, { authorization: `Bearer ${token}` }), path).toBe(200);
    }
    for (const path of ['/healthz', '/readyz']) expect(await statusOf(`${base}${path}`), path).toBe(200);

    // A browser opens the printed URL once; the answer is the page itself, plus the cookie.
    const first = await fetch(`${base}/status?token=${token}`);
    expect(first.status).toBe(200);
    expect(((await first.json()) as { phase: string }).phase).toBe('waiting');
    const setCookie = first.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(new RegExp(`^${ACCESS_COOKIE}=[^;]+;`));
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    // The cookie carries something derived from the token, not the token.
    expect(setCookie).not.toContain(token);
    const cookie = setCookie.split(';')[0] ?? '';
    for (const path of ['/status', '/metrics'])
      expect(await statusOf(`${base}${path}`, { cookie: `other=1; ${cookie}` }), path).toBe(200);
    expect(await statusOf(`${base}/nothing-here`, { authorization: `Bearer ${token}` })).toBe(404);
  });

  it('without a token (a loopback run) every endpoint is open, as before', async () => {
    const base = await coordinatorWith(undefined);
    for (const path of ['/status', '/metrics', '/healthz', '/readyz'])
      expect(await statusOf(`${base}${path}`), path).toBe(200);
  });

  it('answers only GET and HEAD: any other method is 405, naming the ones allowed', async () => {
    const base = await coordinatorWith(undefined);
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const response = await fetch(`${base}/status`, { method });
      await response.arrayBuffer();
      expect([response.status, response.headers.get('allow')], method).toEqual([405, 'GET, HEAD']);
    }
    const head = await fetch(`${base}/status`, { method: 'HEAD' });
    expect([head.status, await head.text()]).toEqual([200, '']);
  });
});
