import { CallosumError, ErrorCodes } from '../errors.js';

/** Reads model options strictly: an unknown key is a typo the user should hear about. */
export function readModelOptions<T extends Record<string, unknown>>(
  model: string,
  given: Readonly<Record<string, unknown>>,
  defaults: T,
  isValid: { [K in keyof T]: (value: unknown) => boolean },
): T {
  const result: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(given)) {
    const check = isValid[key as keyof T];
    if (check === undefined) {
      const known = Object.keys(defaults);
      const hint = known.length > 0 ? `; options: ${known.join(', ')}` : '';
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `model "${model}" has no option "${key}"${hint}`);
    }
    if (!check(value)) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `model "${model}": invalid value for option "${key}": ${JSON.stringify(value)}`,
      );
    }
    result[key] = value;
  }
  return result as T;
}

const isPositiveInteger = (value: unknown): boolean => Number.isInteger(value) && (value as number) > 0;

export const isPositiveIntegerList = (value: unknown): boolean =>
  Array.isArray(value) && value.length > 0 && value.every(isPositiveInteger);
