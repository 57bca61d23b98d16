import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  CallosumError,
  describeFileError,
  ErrorCodes,
  systemErrorCode,
  writeFileAtomically,
} from '@callosum/core';
import { ZodError } from 'zod';
import { RunFiles } from '../run/run-directory.js';
import { parseMetricsLine, type RecordedEvent } from '../telemetry/events.js';
import { dashboardPage } from './dashboard-page.js';
import { EventBacklog } from './event-backlog.js';

export interface RunReportOptions {
  /** The run directory, holding the run's metrics.jsonl. */
  readonly runDir: string;
  /** Where to write the report (default `<runDir>/report.html`). */
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
  const out = options.out ?? join(options.runDir, RunFiles.REPORT);
  const title = `Callosum report: ${basename(resolve(options.runDir))}`;
  await writeFileAtomically(out, dashboardPage({ title, events: backlog.events() })).catch((error: Error) => {
    const code = systemErrorCode(error);
    const why =
      code === 'ENOENT'
        ? `the directory ${dirname(out)} does not exist`
        : (describeFileError(error.cause, dirname(out)) ?? code);
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `cannot write the report to ${out}: ${why ?? error.message}`,
      {
        cause: error,
      },
    );
  });
  return out;
}

async function readMetrics(file: string): Promise<RecordedEvent[]> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') {
      throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `${file} does not exist: not a run directory?`);
    }
    // The argument names a file: the report is made from the directory a run wrote, not from a file in it.
    if (error.code === 'ENOTDIR') {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `${dirname(file)} is a file, not a run directory: give the directory that holds ${basename(file)}`,
      );
    }
    throw error;
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
