import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Topology } from '@callosum/coordinator';
import {
  type RunCallbacks,
  RunFiles,
  type RunSummary,
  runDirectoryState,
  storedModel,
  storedSummary,
} from '@callosum/coordinator';
import {
  ErrorCodes,
  isCallosumError,
  newestCheckpointStep,
  requireTrainedTask,
  taskNameOf,
  type WireDtype,
} from '@callosum/core';
import type { Command, Option } from 'commander';
import { booleanOption, envOption } from './env-options.js';
import { createProgressReporter } from './progress.js';
import { runUntilSignal } from './signals.js';
import { formatSummary } from './summary.js';
import {
  type CheckpointFlags,
  type CheckpointSettings,
  checkpointSettings,
  flagsIgnoredOnResume,
  resumeCommand,
  type StoredRunOptions,
  storedRunOptions,
  type TrainingFlags,
} from './training-options.js';

/** The flags of a command that runs training (`train`, `coordinator`). */
export interface RunFlags extends TrainingFlags, CheckpointFlags {
  json?: boolean;
  trace?: string;
  wireDtype: WireDtype;
  topology: Topology;
}

/** How reportRun prints the summary: --json for a program. */
export function jsonOption(): Option {
  return booleanOption(
    '--json',
    'print the summary as one JSON object on the last line of stdout (a failed or stopped run: its error)',
  );
}

/** --trace: the coordinator's timeline of every step, for Perfetto or chrome://tracing. */
export function traceOption(): Option {
  return envOption(
    '--trace <file>',
    'write a timeline of every step (Chrome trace event JSON: open it in ui.perfetto.dev or chrome://tracing)',
  );
}

/**
 * The settings of a run's flags that reportRun hands to the run: its directory, checkpoints, trace file,
 * and the topology, wire dtype and peer TLS when given (a resumed run otherwise keeps its own).
 */
export interface RunSettings extends CheckpointSettings, StoredRunOptions {
  readonly traceFile?: string;
}

/** What a command hands to the run it reports on. */
export interface RunHooks extends Required<RunCallbacks> {
  /** Fires on SIGINT, SIGTERM, SIGHUP, or output that cannot be written. */
  readonly signal: AbortSignal;
  /** Called once the coordinator has started (runUntilSignal's `started`). */
  readonly onStarted: () => void;
}

/**
 * Runs the training run of a command's flags with progress on stderr and the summary on stdout: a table
 * for a person, or with --json one JSON object on the last line for a program. `run` gets the run's
 * settings, whose outDir is the run directory. Resuming a finished run reports its stored summary (given
 * the run's task, as a resume of an unfinished run must be); a run stopped by a signal, for want of
 * workers or by a file it could not write (a full disk) says how to resume it, if it has a checkpoint to
 * resume.
 */
export async function reportRun(
  command: Command,
  flags: RunFlags,
  run: (settings: RunSettings, hooks: RunHooks) => Promise<RunSummary>,
): Promise<void> {
  const settings: RunSettings = {
    ...checkpointSettings(command, flags),
    ...storedRunOptions(command, flags),
    ...(flags.trace === undefined ? {} : { traceFile: flags.trace }),
  };
  const { outDir: runDir, resume } = settings;
  const json = flags.json === true;
  const printSummary = (summary: RunSummary) =>
    process.stdout.write(json ? `${JSON.stringify(jsonSummary(summary))}\n` : `${formatSummary(summary)}\n`);
  if (resume) {
    const ignored = flagsIgnoredOnResume(command);
    if (ignored.length > 0) {
      process.stderr.write(
        `callosum: warning: --resume continues the run with the settings it started with; ignoring ${ignored.join(', ')}\n`,
      );
    }
    const finished = await storedSummary(runDir);
    if (finished !== undefined) {
      // As the coordinator checks an unfinished run's task against its checkpoint.
      const trained = await storedModel(runDir);
      if (trained !== undefined) {
        requireTrainedTask(trained, flags.task === undefined ? undefined : taskNameOf(flags.task));
      }
      process.stderr.write(`callosum: the run in ${runDir} is already complete; its summary:\n`);
      printSummary(finished);
      return;
    }
  }
  const progress = createProgressReporter();
  let signal: AbortSignal | undefined;
  /** The last step this process trained. */
  let reached: number | undefined;
  try {
    const summary = await runUntilSignal((abort, started) => {
      signal = abort;
      return run(settings, {
        log: (line) => progress.log(line),
        onStep: (report) => {
          reached = report.step;
          progress.step(report);
        },
        onEvaluation: (report) => progress.evaluation(report),
        signal: abort,
        onStarted: started,
      });
    }).finally(() => progress.stop());
    printSummary(summary);
  } catch (error) {
    const writeFailed = isCallosumError(error, ErrorCodes.WRITE_FAILED);
    const stoppedToResume = signal?.aborted === true || stoppedForWorkers(error) || writeFailed;
    let resume: { command: string; fromStep: number | undefined } | undefined;
    if (stoppedToResume && (await runDirectoryState(runDir)) === 'resumable') {
      const from = await newestCheckpointStep(join(runDir, RunFiles.CHECKPOINTS));
      resume = { command: resumeCommand(command, runDir), fromStep: from };
      // The step it stopped at could not be checkpointed (a ring run whose replicas were all lost, say).
      const behind =
        from !== undefined && reached !== undefined && from < reached
          ? ` at step ${reached}, after its newest checkpoint: a resume continues from step ${from}`
          : '';
      const when = writeFailed ? 'once the file can be written again, ' : '';
      process.stderr.write(`callosum: stopped${behind}; ${when}continue with: ${resume.command}\n`);
    }
    if (typeof error === 'object' && error !== null) failedRuns.set(error, { runDir, resume });
    throw error;
  }
}

interface FailedRun {
  readonly runDir: string;
  /** How to continue it, when it can be. */
  readonly resume: { command: string; fromStep: number | undefined } | undefined;
}

/** The run each error reportRun rethrew ended, for the --json line that reports it. */
const failedRuns = new WeakMap<object, FailedRun>();

/**
 * The --json line of a command that failed (bin.ts prints it), so that a program reading the last line
 * always gets one: what stopped it and, for a run, where the run is and how to continue it.
 */
export function jsonFailureLine(error: unknown): string {
  const code = isCallosumError(error)
    ? error.code
    : ((error as { code?: unknown } | undefined)?.code ?? 'INTERNAL');
  const run = typeof error === 'object' && error !== null ? failedRuns.get(error) : undefined;
  const resume = run?.resume;
  return JSON.stringify({
    error: { code: String(code), message: error instanceof Error ? error.message : String(error) },
    // A run that stopped before its first step removed its directory.
    ...(run !== undefined && existsSync(run.runDir) ? { runDir: resolve(run.runDir) } : {}),
    ...(resume === undefined
      ? {}
      : {
          resumeCommand: resume.command,
          ...(resume.fromStep === undefined ? {} : { resumeFromStep: resume.fromStep }),
        }),
  });
}

/** A run stopped for want of workers (none joined in time, or every local one exited): resuming can help. */
function stoppedForWorkers(error: unknown): boolean {
  return (
    isCallosumError(error, ErrorCodes.NO_WORKERS) || isCallosumError(error, ErrorCodes.COORDINATOR_STOPPING)
  );
}

/** The --json summary: testAccuracy only when the task measures accuracy (JSON has no NaN). */
function jsonSummary(summary: RunSummary): Partial<RunSummary> {
  if (!Number.isNaN(summary.testAccuracy)) return summary;
  const { testAccuracy: _, ...measured } = summary;
  return measured;
}
