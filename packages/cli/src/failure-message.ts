import { describeFileError, ErrorCodes, isCallosumError } from '@callosum/core';
import { type Command, CommanderError, InvalidArgumentError } from 'commander';

interface SystemError extends Error {
  readonly code?: string;
  readonly syscall?: string;
  readonly path?: string;
  readonly address?: string;
  readonly port?: number;
  readonly hostname?: string;
  readonly input?: string;
}

/**
 * What a known system error means for the user, and what to do about it. What an error about a file
 * says (its path, or the device holding it) is core's describeFileError, as the coordinator's
 * WRITE_FAILED says it; a path Node did not give is left out, never printed empty.
 */
function describeSystemError(error: SystemError): string | undefined {
  const where = error.address === undefined ? '' : ` ${error.address}:${error.port ?? ''}`;
  const file = describeFileError(error);
  switch (error.code) {
    case 'EADDRINUSE':
      return `port${where} is already in use (--port): choose another port, or 0 for any free one`;
    case 'EADDRNOTAVAIL':
      return `address${where} is not an address of this machine (--host)`;
    case 'EACCES':
    case 'EPERM':
      return error.syscall === 'listen' || error.syscall === 'bind'
        ? `not allowed to listen on${where} (--port): ports below 1024 need privileges; choose a higher one`
        : `${file}: choose a place you can write (--out) or read`;
    case 'ENOTDIR':
      return `${file}: choose another --out`;
    case 'EROFS':
      return `${file}: choose a writable --out`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `${file}: free space or choose another --out`;
    case 'ENOENT':
      return file;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve the host name ${error.hostname ?? ''} (--host / --connect): give an IP address or a resolvable name`;
    case 'ERR_INVALID_URL':
      return `"${error.input ?? ''}" is not a URL (--connect): expected ws://host:port or wss://host:port`;
    default:
      return undefined;
  }
}

/** What commander prints after a usage error, in place of the whole help. */
export const USAGE_HINT = '(--help lists the options)';

/**
 * The one line the CLI prints for a failed command. Errors the user can fix (bad input, a port in use,
 * an unwritable directory) name what is wrong and what to do; a stack trace only with `debug`, or for an
 * error nobody expected, which is a bug.
 */
export function failureMessage(
  error: unknown,
  debug: boolean,
  flags: ReadonlySet<string> = new Set(),
): string {
  const stack = debug && error instanceof Error && error.stack !== undefined ? `\n${error.stack}` : '';
  if (isCallosumError(error, ErrorCodes.INVALID_ARGUMENT)) {
    return `${error.code}: ${asFlags(error.message, flags)}${stack}`;
  }
  if (isCallosumError(error)) return `${error.code}: ${error.message}${stack}`;
  if (error instanceof InvalidArgumentError || error instanceof CommanderError)
    return `${error.message}${stack}`;
  const known = error instanceof Error ? describeSystemError(error as SystemError) : undefined;
  if (known !== undefined) return `${known}${stack}`;
  const trace = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return `internal error (a bug in Callosum; please report it with this trace):\n${trace}`;
}

/** A refusal of the libraries' option schemas (core's parseOptions), which names options, not flags. */
const SETTINGS_REFUSAL = /^(?:coordinator options|worker options|training config): /;
/** An option name in such a message: camelCase, not part of a path, a quoted value or a longer word. */
const OPTION_NAME = /(?<![\w/.\-"'])[a-z]+(?:[A-Z][a-z]*)+(?![\w/.\-"'])/g;

/**
 * A settings refusal with the option names written as the flags the user gave for them (`minWorkers`
 * as `--min-workers`); names set by no flag given (a task's default, say) stay as they are.
 */
function asFlags(message: string, flags: ReadonlySet<string>): string {
  if (!SETTINGS_REFUSAL.test(message)) return message;
  return message.replace(OPTION_NAME, (name) => {
    const flag = `--${name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
    return flags.has(flag) ? flag : name;
  });
}

/** The long flags of `command` the user set, on its command line or through the environment. */
export function flagsGiven(command: Command): Set<string> {
  const given = command.options.filter((option) =>
    ['cli', 'env'].includes(command.getOptionValueSource(option.attributeName()) ?? ''),
  );
  return new Set(given.flatMap((option) => (option.long === undefined ? [] : [option.long])));
}
