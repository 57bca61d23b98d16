import { execFileSync } from 'node:child_process';
import { basename, dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CallosumError, ErrorCodes } from '../errors.js';
import { isDefinedTask } from './define-task.js';
import { taskFromDefinition } from './module-task.js';
import type { Task } from './task.js';

/** How often a task module being imported is said to be still importing. */
const STILL_IMPORTING_EVERY_MS = 15_000;

/**
 * Loads a task module (`.mjs` or `.js`, whose default export is defineTask's result) from this machine's
 * file system. Workers never receive code over the wire: every process loads the module itself. With
 * `log`, an import that lasts says so every 15 s.
 */
export async function loadTaskModule(
  path: string,
  { log }: { log?: (line: string) => void } = {},
): Promise<Task> {
  const absolute = resolve(path);
  let module: { default?: unknown };
  // A top-level await that never settles, with a timer keeping the process alive, would be a silent
  // hang. Unref'd: without such a timer, Node's exit with nothing left to run is what names the problem.
  const startedAt = performance.now();
  const still =
    log &&
    setInterval(() => {
      const seconds = Math.round((performance.now() - startedAt) / 1000);
      log(`still importing task module ${absolute} (${seconds} s): its top-level code has not finished`);
    }, STILL_IMPORTING_EVERY_MS).unref();
  try {
    module = (await import(pathToFileURL(absolute).href)) as { default?: unknown };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    // Node's message for a missing export says which module and name already.
    const located = error instanceof SyntaxError && !/^(The requested module|Named export)/.test(reason);
    const where = located ? ` ${syntaxErrorLocation(absolute)}` : '';
    throw new CallosumError(
      ErrorCodes.TASK_INVALID,
      `task module ${absolute} cannot be loaded: ${reason}${where}`,
      { cause: error },
    );
  } finally {
    clearInterval(still);
  }
  if (module.default === undefined) {
    throw new CallosumError(
      ErrorCodes.TASK_INVALID,
      `task module ${absolute} has no default export; it must \`export default defineTask({ model, data, loss })\``,
    );
  }
  if (!isDefinedTask(module.default)) {
    throw new CallosumError(
      ErrorCodes.TASK_INVALID,
      `task module ${absolute}: its default export is not the result of defineTask from @callosum/core`,
    );
  }
  return taskFromDefinition(module.default, taskNameOf(absolute));
}

/** The name of the task module at `path`: examples/spam/task.mjs is "spam"; tasks/spam.mjs is "spam" too. */
export function taskNameOf(path: string): string {
  const absolute = resolve(path);
  const file = basename(absolute).replace(/\.[cm]?[jt]s$/, '');
  return file === 'task' ? basename(dirname(absolute)) : file;
}

/**
 * Where a syntax error is, which Node's error from import() does not say: `node --check` on the module
 * names its line ("at t.mjs:2: foo(1, 2;"). When the module itself parses, the error is in one it
 * imports, or was thrown while it ran (a JSON.parse at its top level).
 */
function syntaxErrorLocation(path: string): string {
  try {
    execFileSync(process.execPath, ['--check', path], { stdio: 'pipe', timeout: 10_000 });
    return '(the file parses: the error is in a module it imports, which `node --check <file>` finds, or was thrown while it ran)';
  } catch (error) {
    const lines = String((error as { stderr?: Buffer }).stderr ?? '').split('\n');
    // "<path>:<line>", then the line's code.
    const at = lines.findIndex((line) => line.startsWith(`${path}:`));
    return at < 0 ? '' : `(at ${lines[at]}: ${lines[at + 1]?.trim() ?? ''})`;
  }
}
