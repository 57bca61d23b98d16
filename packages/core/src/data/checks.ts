import { CallosumError, ErrorCodes } from '../errors.js';

/** Throws INVALID_ARGUMENT unless `value` is an integer in `min..max` (inclusive). */
export function requireIntegerInRange(
  what: string,
  value: number,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `${what} must be an integer ${range}, got ${value}`);
  }
}

/** The DATASET_INVALID error for a data file: the message always starts with the file's path. */
export function datasetInvalid(path: string, problem: string, cause?: unknown): CallosumError {
  return new CallosumError(ErrorCodes.DATASET_INVALID, `${path}: ${problem}`, { cause });
}
