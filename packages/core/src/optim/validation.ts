import { CallosumError, ErrorCodes } from '../errors.js';
import { didYouMean } from '../options/did-you-mean.js';
import { shownWithType } from '../options/schema.js';

/** The values a numeric option accepts; `description` completes "must be ...". */
export interface NumberRange {
  readonly description: string;
  readonly contains: (value: number) => boolean;
}

export const POSITIVE: NumberRange = { description: 'a number > 0', contains: (value) => value > 0 };
export const NON_NEGATIVE: NumberRange = { description: 'a number >= 0', contains: (value) => value >= 0 };
export const POSITIVE_INTEGER: NumberRange = {
  description: 'an integer >= 1',
  contains: (value) => Number.isSafeInteger(value) && value >= 1,
};
export const NON_NEGATIVE_INTEGER: NumberRange = {
  description: 'an integer >= 0',
  contains: (value) => Number.isSafeInteger(value) && value >= 0,
};
/** [0, 1): the range of a decay rate such as momentum or Adam's betas. */
export const DECAY_RATE: NumberRange = {
  description: 'a number in [0, 1)',
  contains: (value) => value >= 0 && value < 1,
};

export function closedInterval(min: number, max: number): NumberRange {
  return { description: `a number in [${min}, ${max}]`, contains: (value) => value >= min && value <= max };
}

/**
 * Returns `value` if it is a finite number in `range`; otherwise throws INVALID_ARGUMENT naming the
 * option and the value. `context` says whose option it is, e.g. `optimizer "adam"`.
 */
export function requireNumber(context: string, option: string, value: unknown, range: NumberRange): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !range.contains(value)) {
    throw invalidOption(context, option, value, range.description);
  }
  return value;
}

export function requireBoolean(context: string, option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') {
    throw invalidOption(context, option, value, 'true or false');
  }
  return value;
}

/**
 * Rejects keys of `spec` outside `known`: a misspelt option would otherwise silently keep its default.
 * The message suggests the option meant, when one is near, and lists the options.
 */
export function rejectUnknownOptions<Spec extends object>(
  context: string,
  spec: Spec,
  known: readonly (keyof Spec & string)[],
): void {
  const problem = unknownOption(spec, known);
  if (problem !== undefined) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `${context} ${problem}`);
}

/**
 * `has no option "x" (did you mean "y"?); options: ...` for the first key of `spec` outside `known`
 * (see didYouMean for `aliases`).
 */
export function unknownOption(
  spec: object,
  known: readonly string[],
  aliases?: Readonly<Record<string, string>>,
): string | undefined {
  const key = Object.keys(spec).find((option) => !known.includes(option));
  return key === undefined
    ? undefined
    : `has no option "${key}"${didYouMean(key, known, aliases)}; options: ${known.join(', ')}`;
}

function invalidOption(context: string, option: string, value: unknown, expected: string): CallosumError {
  return new CallosumError(
    ErrorCodes.INVALID_ARGUMENT,
    `${context}: ${option} must be ${expected}, got ${shownWithType(value)}`,
  );
}
