import { CallosumError, ErrorCodes } from '../errors.js';

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

/** Rejects keys of `spec` outside `known`: a misspelt option would otherwise silently keep its default. */
export function rejectUnknownOptions<Spec extends object>(
  context: string,
  spec: Spec,
  known: readonly (keyof Spec & string)[],
): void {
  for (const key of Object.keys(spec)) {
    if (!(known as readonly string[]).includes(key)) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `${context} has no option "${key}"; options: ${known.join(', ')}`,
      );
    }
  }
}

function invalidOption(context: string, option: string, value: unknown, expected: string): CallosumError {
  return new CallosumError(
    ErrorCodes.INVALID_ARGUMENT,
    `${context}: ${option} must be ${expected}, got ${describeValue(value)}`,
  );
}

function describeValue(value: unknown): string {
  // Quote strings and show objects, but keep NaN, Infinity and undefined readable (JSON would lose them).
  return typeof value === 'string' || typeof value === 'object' ? JSON.stringify(value) : String(value);
}
