import { networkInterfaces } from 'node:os';

const EVERY_INTERFACE = new Set(['0.0.0.0', '::', '']);

/**
 * The addresses workers can connect to for a coordinator listening at `url`. A wildcard host (0.0.0.0,
 * ::) is not an address anyone can connect to: it stands for this machine's interfaces, so they are
 * listed instead, non-internal ones first.
 */
export function advertisedUrls(url: string): string[] {
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (!EVERY_INTERFACE.has(host)) return [url];
  const ipv6 = host === '::';
  const addresses = Object.values(networkInterfaces())
    .flatMap((entries) => entries ?? [])
    // Link-local IPv6 addresses need a zone id, which a URL cannot carry.
    .filter((entry) => entry.family === 'IPv4' || (ipv6 && !entry.address.startsWith('fe80')))
    .sort((a, b) => Number(a.internal) - Number(b.internal));
  return addresses.map((entry) => {
    const copy = new URL(url);
    copy.hostname = entry.family === 'IPv6' ? `[${entry.address}]` : entry.address;
    return copy.toString().replace(/\/$/, '');
  });
}
