/**
 * Whether `host` (a name or an address, without brackets) only this machine can reach: where a port may
 * be opened without a token, since only local processes can connect to it.
 */
export function isLoopbackHost(host: string): boolean {
  return /^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host);
}
