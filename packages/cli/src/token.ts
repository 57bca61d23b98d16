import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Option } from 'commander';
import { envOption } from './env-options.js';

export interface TokenFlags {
  token?: string;
  tokenFile?: string;
}

/**
 * The shared secret: from CALLOSUM_TOKEN (or --token, visible to `ps`, so for tests), or from a file
 * such as a mounted Kubernetes Secret (--token-file / CALLOSUM_TOKEN_FILE).
 */
export function tokenOptions(): Option[] {
  return [
    envOption('--token <secret>', 'shared secret (prefer CALLOSUM_TOKEN or --token-file)').argParser(
      nonEmptyToken,
    ),
    envOption('--token-file <path>', 'file holding the shared secret'),
  ];
}

/**
 * An empty token is refused as such: `CALLOSUM_TOKEN=` left by a template or an unset shell variable
 * would otherwise be refused as too short, which names neither the variable nor that it is empty.
 * Commander names where the value came from (`--token`, or `from env 'CALLOSUM_TOKEN'`). A token that
 * is not empty is never shown.
 */
function nonEmptyToken(raw: string): string {
  if (raw.trim() === '') {
    throw new InvalidArgumentError(
      'the token is empty: set CALLOSUM_TOKEN (or --token-file) to the shared secret, or unset an empty CALLOSUM_TOKEN',
    );
  }
  return raw;
}

export function tokenFrom(flags: TokenFlags): string | undefined {
  if (flags.token !== undefined && flags.tokenFile !== undefined) {
    // Either could be the one meant (an exported CALLOSUM_TOKEN is easy to forget): say so, not guess.
    throw new InvalidArgumentError(
      'both a token (--token or CALLOSUM_TOKEN) and a token file (--token-file or CALLOSUM_TOKEN_FILE) are set: give one',
    );
  }
  if (flags.token !== undefined) return flags.token;
  if (flags.tokenFile === undefined) return undefined;
  let token: string;
  try {
    token = readFileSync(flags.tokenFile, 'utf8').trim();
  } catch (error) {
    throw new InvalidArgumentError(
      `cannot read the token file ${flags.tokenFile}: ${(error as Error).message}`,
    );
  }
  if (token === '') throw new InvalidArgumentError(`the token file ${flags.tokenFile} is empty`);
  return token;
}

/** A fresh secret for a run whose workers this process starts itself. */
export function generateToken(): string {
  return randomBytes(32).toString('hex');
}
