import { lstat, readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import {
  CallosumError,
  describeFileError,
  ErrorCodes,
  systemErrorCode,
  writeFileAtomically,
} from '@callosum/core';
import { ZodError } from 'zod';
import { LOCK_FILE, REPLACED_RUN_PREFIX, RunFiles } from '../run/run-directory.js';
import { parseMetricsLine, type RecordedEvent } from '../telemetry/events.js';
import { dashboardPage } from './dashboard-page.js';
import { EventBacklog } from './event-backlog.js';

export interface RunReportOptions {
  /** The run directory, holding the run's metrics.jsonl. */
  readonly runDir: string;
  /**
   * Where to write the report (default `<runDir>/report.html`); never one of the run's own files
   * (metrics.jsonl, summary.json, …) or a file in its checkpoints/ or model/ directory: refused.
   */
  readonly out?: string;
}

/**
 * Writes the dashboard's views of a run, built from its metrics.jsonl, as one HTML file that holds its
 * script, styles and data and needs no server and no network. Resolves with the file's path.
 */
export async function writeRunReport(options: RunReportOptions): Promise<string> {
  const metricsFile = join(options.runDir, RunFiles.METRICS);
  const backlog = new EventBacklog();
  for (const event of await readMetrics(metricsFile)) backlog.add(event);
  const defaultOut = join(options.runDir, RunFiles.REPORT);
  const out = options.out ?? defaultOut;
  // Checked, then written, where the kernel would put `out`: a `..` after a symbolic link leads out of
  // the directory the link points to, not out of the link's own (path.resolve would remove it first).
  const target = await realTarget(out);
  const damaged = target === undefined ? undefined : await runFileAt(options.runDir, target);
  if (damaged !== undefined) {
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `cannot write the report to ${out}: ${damaged}; write it to another file` +
        (out === defaultOut ? '' : ` (by default ${defaultOut})`),
    );
  }
  const title = `Callosum report: ${basename(resolve(options.runDir))}`;
  await writeFileAtomically(target ?? out, dashboardPage({ title, events: backlog.events() })).catch(
    (error: Error) => {
      const code = systemErrorCode(error);
      const why =
        code === 'ENOENT'
          ? `the directory ${dirname(out)} does not exist`
          : // A directory where the file would go is the file's trouble; anything else, its directory's.
            (describeFileError(error.cause, code === 'EISDIR' ? out : dirname(out)) ?? code);
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `cannot write the report to ${out}: ${why ?? error.message}`,
        {
          cause: error,
        },
      );
    },
  );
  return out;
}

/**
 * Where writing to `out` puts the file: its directory as the kernel finds it (symbolic links followed
 * and `..` taken after them, component by component: realpath of the directory as written, never of
 * path.resolve's, which removes `x/..` before a link `x` is followed), and its name there. A link `out`
 * itself is not followed: the report's atomic write replaces the directory entry. Undefined when the
 * directory does not exist (the write then says so).
 */
async function realTarget(out: string): Promise<string | undefined> {
  const parent = await realpath(dirname(out)).catch(() => undefined);
  return parent === undefined ? undefined : join(parent, basename(out));
}

/**
 * What writing the report to `target` (a path realTarget gave: its directory real) would replace of
 * the run in `runDir` ("the run's metrics.jsonl (…)"), or undefined where it replaces none of it. The
 * earlier runs `--overwrite` moved aside (`replaced-<time>/`) are run directories too.
 */
async function runFileAt(runDir: string, target: string): Promise<string | undefined> {
  const run = await realpath(runDir).catch(() => resolve(runDir));
  const within = relative(run, target);
  if (within === '' || within === '..' || within.startsWith(`..${sep}`) || isAbsolute(within)) {
    return undefined;
  }
  const names = within.split(sep);
  let directory = run;
  let whose = "the run's";
  for (const [index, name] of names.entries()) {
    const last = index === names.length - 1;
    const entry = await runEntryNamed(directory, name);
    if (entry === RunFiles.CHECKPOINTS || entry === RunFiles.MODEL) {
      const where = join(directory, entry);
      return last
        ? `that is ${whose} ${entry} directory (${where})`
        : `that is in ${whose} ${entry} directory (${where}), which holds the run's own files only`;
    }
    if (entry !== undefined) return `that is ${whose} ${entry} (${target}), which the report would replace`;
    if (last || !name.startsWith(REPLACED_RUN_PREFIX)) return undefined;
    directory = join(directory, name);
    whose = "the earlier run's";
  }
  return undefined;
}

/** The files and directories of a run, which its report never replaces (report.html is the report's). */
const RUN_OWN_ENTRIES: readonly string[] = [
  ...Object.values(RunFiles).filter((name) => name !== RunFiles.REPORT),
  LOCK_FILE,
];

/**
 * Which of RUN_OWN_ENTRIES `name` in the run directory `directory` is: that name, or another case of it
 * that is the same entry (a case-insensitive file system: macOS's, Windows'). A hard link by another
 * name is not: the report's rename replaces the link, not the run's file.
 */
async function runEntryNamed(directory: string, name: string): Promise<string | undefined> {
  if (RUN_OWN_ENTRIES.includes(name)) return name;
  const entry = RUN_OWN_ENTRIES.find((own) => own.toLowerCase() === name.toLowerCase());
  if (entry === undefined) return undefined;
  const [found, own] = await Promise.all(
    [name, entry].map((each) => lstat(join(directory, each)).catch(() => undefined)),
  );
  return found !== undefined && own !== undefined && found.dev === own.dev && found.ino === own.ino
    ? entry
    : undefined;
}

async function readMetrics(file: string): Promise<RecordedEvent[]> {
  // A directory (or a pipe, which would never end) in its place is no metrics record: said before reading.
  const found = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw metricsReadError(file, error);
  });
  if (!found.isFile()) {
    throw new CallosumError(
      ErrorCodes.ARTIFACT_INVALID,
      `${file} is ${found.isDirectory() ? 'a directory' : 'not a regular file'}: a run's ${basename(file)} is a file`,
    );
  }
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw metricsReadError(file, error);
  });
  const lines = text.split('\n');
  // A coordinator killed mid-write leaves its last line unfinished: that line alone is left out.
  const unfinished = lines.pop() ?? '';
  const events = lines.map((line, index) => parseLine(file, index + 1, line));
  if (unfinished !== '') {
    try {
      events.push(parseMetricsLine(unfinished));
    } catch {
      // left out, as said
    }
  }
  if (events.length === 0) throw new CallosumError(ErrorCodes.ARTIFACT_INVALID, `${file} holds no events`);
  return events;
}

/** Why the metrics record `file` cannot be read, as the error `callosum report` fails with. */
function metricsReadError(file: string, error: NodeJS.ErrnoException): CallosumError {
  if (error.code === 'ENOENT') {
    return new CallosumError(ErrorCodes.INVALID_ARGUMENT, `${file} does not exist: not a run directory?`);
  }
  // The argument names a file: the report is made from the directory a run wrote, not from a file in it.
  if (error.code === 'ENOTDIR') {
    return new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `${dirname(file)} is a file, not a run directory: give the directory that holds ${basename(file)}`,
    );
  }
  // Permission refused (to the file, or to a directory on its path), an input/output error, …
  const why =
    error.code === 'EACCES' || error.code === 'EPERM'
      ? 'permission denied'
      : error.code === 'EISDIR'
        ? 'it is a directory'
        : describeFileError(error, file);
  return new CallosumError(
    ErrorCodes.ARTIFACT_INVALID,
    `cannot read the run's metrics record ${file}: ${why ?? error.message}`,
    { cause: error },
  );
}

function parseLine(file: string, lineNumber: number, line: string): RecordedEvent {
  try {
    return parseMetricsLine(line);
  } catch (error) {
    const issue = error instanceof ZodError ? error.issues[0] : undefined;
    const why =
      issue === undefined
        ? String((error as Error).message)
        : `${issue.path.join('.') || 'line'}: ${issue.message}`;
    throw new CallosumError(
      ErrorCodes.ARTIFACT_INVALID,
      `${file}:${lineNumber} is not a metrics line (${why})`,
    );
  }
}
