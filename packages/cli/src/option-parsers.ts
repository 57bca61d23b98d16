import { isWebSocketUrl } from '@callosum/worker';
import { InvalidArgumentError } from 'commander';

/** Parsers for commander options: each rejects bad input with a message naming what was expected. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw.trim()) || value < min || value > max) {
      throw new InvalidArgumentError(
        `expected an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, got "${raw}"`,
      );
    }
    return value;
  };
}

export function positiveNumber(raw: string): number {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`expected a positive number, got "${raw}"`);
  }
  return value;
}

/** A coordinator address: checked before a worker loads its backend, so a typo fails at once. */
export function coordinatorUrl(raw: string): string {
  if (!isWebSocketUrl(raw)) {
    throw new InvalidArgumentError(`expected ws://host:port or wss://host:port, got "${raw}"`);
  }
  return raw;
}
