import { dirname } from 'node:path';
import { CallosumError, ErrorCodes, isCallosumError } from '../errors.js';

/** A Node system error: its errno code, and the path when Node knows it (a write to an open file has none). */
interface SystemError extends Error {
  readonly code?: string;
  readonly path?: string;
}

/**
 * What a system error about a file or directory means, in words, naming `path` (else the error's own
 * path; with neither, no path at all, never an empty one): ENOSPC → "no space left on the device
 * holding <path>". Undefined for an error that is not about a file. What to do about it is the
 * caller's to add (the CLI names the flag, failure-message.ts).
 */
export function describeFileError(error: unknown, path?: string): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const { code, path: ownPath } = error as SystemError;
  const where = path ?? (ownPath === '' ? undefined : ownPath);
  switch (code) {
    case 'ENOSPC':
      return where === undefined
        ? 'no space left on the device'
        : `no space left on the device holding ${where}`;
    case 'EDQUOT':
      return where === undefined
        ? 'disk quota exceeded'
        : `disk quota exceeded on the device holding ${where}`;
    case 'EACCES':
    case 'EPERM':
      return where === undefined ? 'permission denied' : `permission denied for ${where}`;
    case 'ENOTDIR':
      return `${where ?? 'a part of the path'} is not a directory (part of the path is a file)`;
    case 'EROFS':
      return `${where ?? 'the file'} is on a read-only file system`;
    case 'ENOENT':
      return `${where ?? 'the file or directory'} does not exist`;
    case 'EISDIR':
      return `${where ?? 'the file'} is a directory`;
    case 'EIO':
      return where === undefined
        ? 'input/output error (the device may be failing)'
        : `input/output error on the device holding ${where} (it may be failing)`;
    default:
      return undefined;
  }
}

/**
 * A failed write of the file `path` as the error Callosum raises: WRITE_FAILED, naming the file and what
 * the system said. A full, read-only or missing directory is named as the directory holding the file
 * (Node's error for a failed write has no path; for an atomic write's open it names the temporary
 * file); a permission refused, as the file. A CallosumError passes through unchanged.
 */
export function writeFailure(path: string, error: unknown): CallosumError {
  if (isCallosumError(error)) return error;
  const code = error instanceof Error ? (error as SystemError).code : undefined;
  const about = code === 'EACCES' || code === 'EPERM' || code === 'EISDIR' ? path : dirname(path);
  const reason = describeFileError(error, about) ?? (error instanceof Error ? error.message : String(error));
  return new CallosumError(ErrorCodes.WRITE_FAILED, `cannot write ${path}: ${reason}`, { cause: error });
}

/** The system error's code (ENOSPC, EACCES, …) of `error`, or of the error it wraps (a WRITE_FAILED). */
export function systemErrorCode(error: unknown): string | undefined {
  const system = isCallosumError(error) ? error.cause : error;
  return system instanceof Error ? (system as SystemError).code : undefined;
}
