import { InvalidArgumentError, Option } from 'commander';

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);

/**
 * A yes/no value from a flag or an environment variable: 1/0, true/false, yes/no, on/off, in any case.
 * Anything else is an error, never "on": `CALLOSUM_INSECURE=0` must not start an insecure coordinator.
 */
export function strictBoolean(raw: string): boolean {
  const word = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw new InvalidArgumentError(`expected one of 1/0, true/false, yes/no, on/off, got "${raw}"`);
}

/**
 * A boolean flag that is also an environment variable. `--flag` alone means true; `--flag false` and
 * `ENV=0` mean false. (Commander's plain boolean options take any environment value as true.)
 */
export function booleanOption(name: string, description: string, env: string): Option {
  return new Option(`${name} [yes/no]`, description).env(env).preset('true').argParser(strictBoolean);
}
