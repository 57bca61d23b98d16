import { afterEach, describe, expect, it } from 'vitest';
import type { CoordinatorEvent } from '../telemetry/events.js';
import { type ReadAccess, readAccess } from '../transport/read-access.js';
import { startTransport, type Transport } from '../transport/server.js';
import { DashboardFeed } from './dashboard-feed.js';
import { dashboardRoutes, dashboardUrls } from './dashboard-routes.js';

const joined: CoordinatorEvent = {
  type: 'worker-joined',
  worker: 'w1',
  name: 'a',
  address: '127.0.0.1:1',
  backend: 'wasm',
  healthy: 1,
};
const checkpoint: CoordinatorEvent = { type: 'checkpoint', step: 1, path: 'c' };

let transport: Transport | undefined;
afterEach(async () => {
  await transport?.close();
});

async function serve(feed: DashboardFeed, authorizeRead: ReadAccess, token?: string): Promise<string> {
  transport = await startTransport({
    host: '127.0.0.1',
    port: 0,
    maxPayload: 1024,
    onConnection: () => {},
    connectionRate: { perSecond: 1, burst: 1 },
    onRefused: () => {},
    onTlsRefused: () => {},
    authenticate: () => ({ ok: true }),
    routes: dashboardRoutes(feed, 'Callosum: run <a&b>'),
    authorizeRead,
  });
  const [url] = dashboardUrls(transport.url, token);
  return url ?? '';
}

describe('the dashboard routes', () => {
  it('are not open: the page and its events pass the read-access check', async () => {
    const url = await serve(new DashboardFeed(), () => false);
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(`${url}events`)).status).toBe(401);
  });

  it('are reached through the address the coordinator prints, which carries the run token', async () => {
    const token = 'dashboard-test-token-0123456789';
    const url = await serve(new DashboardFeed(), readAccess(token), token);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=dashboard-test-token-0123456789$/);
    expect((await fetch(url.replace(/\?.*/, ''))).status).toBe(401);
    const page = await fetch(url);
    expect(page.status).toBe(200);
    // The page's own later requests carry the cookie the first one set, not the token.
    const cookie = page.headers.get('set-cookie')?.split(';')[0] ?? '';
    const events = await fetch(url.replace(/\?.*/, 'events'), { headers: { cookie } });
    expect(events.status).toBe(200);
    await events.body?.cancel();
  });

  it('serve the page, and stream the backlog then each event as it is recorded', async () => {
    const feed = new DashboardFeed();
    const url = await serve(feed, () => true);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await fetch(url);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await page.text();
    expect(html).toMatch(/<script>.+<\/script>/s);
    expect(html).toContain('<title>Callosum: run &#60;a&#38;b&#62;</title>');

    feed.record(joined, new Date('2026-12-06T00:00:00.000Z'));
    const response = await fetch(`${url}events`);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let received = '';
    const until = async (text: string) => {
      while (!received.includes(text)) received += (await reader.read()).value ?? '';
    };
    await until('"healthy":1}\n\n');
    feed.record(checkpoint, new Date('2026-12-06T00:00:01.000Z'));
    await until('"path":"c"}\n\n');
    const messages = received
      .split('\n\n')
      .filter((block) => block.startsWith('data: '))
      .map((block) => JSON.parse(block.slice('data: '.length)));
    expect(messages).toEqual([
      { time: '2026-12-06T00:00:00.000Z', ...joined },
      { time: '2026-12-06T00:00:01.000Z', ...checkpoint },
    ]);
    // The run's end closes the stream (the browser then stops or reconnects).
    feed.close();
    expect(await reader.read()).toEqual({ done: true, value: undefined });
  });

  it('answer HEAD /events with the headers and end, keeping no stream open for it', async () => {
    const feed = new DashboardFeed();
    feed.record(joined, new Date('2026-12-06T00:00:00.000Z'));
    const url = await serve(feed, () => true);
    // Node sends a HEAD response's headers only when it ends: a stream kept open never answered.
    const head = await fetch(`${url}events`, { method: 'HEAD', signal: AbortSignal.timeout(5_000) });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('text/event-stream');
    expect(await head.text()).toBe('');
  });
});
