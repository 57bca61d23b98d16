import { type Command, InvalidArgumentError, Option } from 'commander';

/**
 * A flag that can also come from the environment, so a manifest only sets env. The variable is
 * CALLOSUM_<FLAG> (`--batch-size`: CALLOSUM_BATCH_SIZE) unless `env` names another.
 */
export function envOption(flags: string, description: string, env?: string): Option {
  const option = new Option(flags, description);
  return option.env(env ?? `CALLOSUM_${option.name().toUpperCase().replace(/-/g, '_')}`);
}

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
export function booleanOption(name: string, description: string): Option {
  return envOption(`${name} [yes/no]`, description).preset('true').argParser(strictBoolean);
}

/** Adds a command's options in the order given, which is the order its help lists them in. */
export function addOptions(command: Command, options: readonly Option[]): void {
  for (const option of options) command.addOption(option);
}
