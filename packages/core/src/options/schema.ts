/**
 * Building blocks for the zod schemas of public options objects (training config, worker options,
 * coordinator options): fields whose errors read "<field> must be ..., got <value>", and one parse
 * function that turns the first problem into an INVALID_ARGUMENT error naming the field.
 */
import { z } from 'zod';
import { CallosumError, type ErrorCode, ErrorCodes } from '../errors.js';

/** An integer in `min..max` (inclusive). */
export function integerOption(min: number, max = Number.MAX_SAFE_INTEGER) {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
  return z.custom<number>(
    (value) => Number.isInteger(value) && (value as number) >= min && (value as number) <= max,
    {
      error: (issue) => `must be an integer ${range}, got ${shownWithType(issue.input)}`,
    },
  );
}

/** A finite number > 0. */
export function positiveNumberOption() {
  return numberOption((value) => Number.isFinite(value) && value > 0, 'a finite number > 0');
}

/** A number that `accepts` allows, described as `description` when it does not. */
export function numberOption(accepts: (value: number) => boolean, description: string) {
  return z.custom<number>((value) => typeof value === 'number' && accepts(value), {
    error: (issue) => `must be ${description}, got ${shownWithType(issue.input)}`,
  });
}

/**
 * An object with a non-empty string `key` (a spec whose other fields its own registry validates).
 * `refusal` may say what is wrong with a value it recognises, instead of "must be <description>".
 */
export function namedSpecOption<T>(
  key: string,
  description: string,
  refusal: (value: unknown) => string | undefined = () => undefined,
) {
  return z.custom<T>(
    (value) =>
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      typeof (value as Record<string, unknown>)[key] === 'string' &&
      ((value as Record<string, unknown>)[key] as string).length > 0,
    { error: (issue) => refusal(issue.input) ?? `must be ${description}, got ${shown(issue.input)}` },
  );
}

/**
 * namedSpecOption's spec, or its name alone (a non-empty string), read as the spec `{ [key]: name }`.
 */
export function nameOrSpecOption<T>(
  key: string,
  description: string,
  refusal: (value: unknown) => string | undefined = () => undefined,
) {
  return z.union(
    [
      z
        .string()
        .min(1)
        .transform((name) => ({ [key]: name }) as T),
      namedSpecOption<T>(key, description),
    ],
    { error: (issue) => refusal(issue.input) ?? `must be ${description}, got ${shown(issue.input)}` },
  );
}

/**
 * Parses `value` with `schema`; on failure throws `code` (INVALID_ARGUMENT unless given) naming `what`
 * and every bad field, e.g. "worker options: url must be a ws:// or wss:// URL, got "http://host"".
 */
export function parseOptions<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
  code: ErrorCode = ErrorCodes.INVALID_ARGUMENT,
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.map(String).join('.');
    return field === '' ? issue.message : `${field} ${issue.message}`;
  });
  throw new CallosumError(code, `${what}: ${problems.join('; ') || 'are invalid'}`);
}

/** How many characters of a value an error message shows: enough for a spec, not for an object's insides. */
const SHOWN_LENGTH = 100;

/**
 * A value as it appears in an error message: strings quoted, objects as JSON cut to SHOWN_LENGTH
 * characters, and NaN, Infinity and undefined readable (JSON would lose them).
 */
export function shown(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) {
    return String(value);
  }
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > SHOWN_LENGTH ? `${text.slice(0, SHOWN_LENGTH)}… (${text.length} characters)` : text;
}

/**
 * `shown(value)` with its type when it is not a number, null or undefined: `"3" (a string)`, so that a
 * message refusing a number given as a string does not read as if it refused the number.
 */
export function shownWithType(value: unknown): string {
  if (typeof value === 'number' || value === undefined || value === null) return shown(value);
  const type = Array.isArray(value)
    ? 'an array'
    : typeof value === 'object'
      ? 'an object'
      : `a ${typeof value}`;
  return `${shown(value)} (${type})`;
}
