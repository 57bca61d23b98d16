import { CallosumError, ErrorCodes, isCallosumError } from '../errors.js';

/** The codes of the errors that say what is wrong with a task's own settings, which namingTask names. */
const NAMED_CODES: readonly string[] = [
  ErrorCodes.INVALID_ARGUMENT,
  ErrorCodes.TASK_INVALID,
  ErrorCodes.UNKNOWN_NAME,
];

/**
 * Runs `make`, naming the task `name` in an error about its settings it throws (an unknown loss, metric
 * or optimizer name, a layer whose randomness Callosum cannot reproduce, say), with the error's code.
 */
export function namingTask<T>(name: string, make: () => T): T {
  try {
    return make();
  } catch (error) {
    if (!isCallosumError(error) || !NAMED_CODES.includes(error.code)) throw error;
    throw new CallosumError(error.code, `task ${name}: ${error.message}`, { cause: error });
  }
}
