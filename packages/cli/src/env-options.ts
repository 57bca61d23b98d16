import { type Command, InvalidArgumentError, Option } from 'commander';

/**
 * A flag that can also come from the environment, so a manifest only sets env. The variable is
 * CALLOSUM_<FLAG> (`--batch-size`: CALLOSUM_BATCH_SIZE) unless `env` names another.
 */
export function envOption(flags: string, description: string, env?: string): Option {
  const option = new Option(flags, description);
  option.env(env ?? `CALLOSUM_${option.name().toUpperCase().replace(/-/g, '_')}`);
  return PATH_ARGUMENT.test(flags) ? option.argParser(nonEmptyPath) : option;
}

/** Options whose value is a file or directory (`--task <module>`, `--data <dir>`, `--tls-ca <file>`, …). */
export const PATH_ARGUMENT = /<(file|dir|path|module)>/;

/**
 * An empty path is refused: `CALLOSUM_OUT=` left by a template would otherwise be read as the current
 * directory, or end in an error naming neither the variable nor a path.
 */
function nonEmptyPath(raw: string): string {
  if (raw.trim() === '') throw new InvalidArgumentError('a path is needed, got an empty value');
  return raw;
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

const booleanOptions = new WeakSet<Option>();

/**
 * A boolean flag that is also an environment variable. `--flag` alone means true; `--flag false` and
 * `ENV=0` mean false. (Commander's plain boolean options take any environment value as true.)
 */
export function booleanOption(name: string, description: string): Option {
  const option = envOption(`${name} [yes/no]`, description).preset('true').argParser(strictBoolean);
  booleanOptions.add(option);
  return option;
}

/**
 * The command line (`process.argv`) with a boolean flag written `--flag=true` where the word after it is
 * a command or a positional argument rather than its value. Commander gives an optional value the next
 * word whatever it is, so `callosum --debug train` read "train" as the value of --debug, and
 * `report --debug RUN_DIR` the run directory. Where the command takes no positional argument the next
 * word stays the flag's value, so `--insecure perhaps` is still refused as not a yes/no word.
 */
export function attachBooleanValues(program: Command, argv: readonly string[]): string[] {
  const flags = new Set<string>();
  const collect = (command: Command): void => {
    for (const option of command.options) {
      if (booleanOptions.has(option) && option.long !== undefined) flags.add(option.long);
    }
    command.commands.forEach(collect);
  };
  collect(program);
  const end = argv.includes('--') ? argv.indexOf('--') : argv.length;
  let command: Command | undefined; // until the subcommand's name is seen
  return argv.map((arg, index) => {
    // argv[0] is node and argv[1] the script.
    if (index < 2 || index >= end) return arg;
    command ??= program.commands.find((candidate) => candidate.name() === arg);
    const next = argv[index + 1];
    if (!flags.has(arg) || next === undefined || index + 1 >= end || isYesNoWord(next)) return arg;
    // `help` is commander's own command, not one of program.commands.
    const nextIsCommand =
      command === undefined &&
      (next === 'help' || program.commands.some((candidate) => candidate.name() === next));
    const nextIsArgument = command !== undefined && command.registeredArguments.length > 0;
    return nextIsCommand || nextIsArgument ? `${arg}=true` : arg;
  });
}

function isYesNoWord(word: string): boolean {
  const normalised = word.trim().toLowerCase();
  return TRUE_WORDS.has(normalised) || FALSE_WORDS.has(normalised);
}

/** Adds a command's options in the order given, which is the order its help lists them in. */
export function addOptions(command: Command, options: readonly Option[]): void {
  for (const option of options) command.addOption(option);
}
