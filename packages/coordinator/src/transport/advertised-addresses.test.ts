import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { advertisedUrls } from './advertised-addresses.js';

describe('advertisedUrls', () => {
  it('lists the IPv4 addresses of this machine for a coordinator on 0.0.0.0, never 0.0.0.0 itself', () => {
    const urls = advertisedUrls('ws://0.0.0.0:7070');
    const ipv4 = Object.values(networkInterfaces())
      .flatMap((entries) => entries ?? [])
      .filter((entry) => entry.family === 'IPv4');
    expect(urls).toHaveLength(ipv4.length);
    expect(urls).toContain('ws://127.0.0.1:7070');
    for (const url of urls) expect(url).not.toContain('0.0.0.0');
  });

  it('keeps a concrete address as it is', () => {
    expect(advertisedUrls('wss://10.1.2.3:7070')).toEqual(['wss://10.1.2.3:7070']);
  });
});
