import type { EvaluationReport, RunSummary, StepReport } from '@callosum/coordinator';
import { createProgressReporter } from './progress.js';
import { runUntilSignal } from './signals.js';
import { formatSummary } from './summary.js';

/** What a command hands to the run it reports on. */
export interface RunHooks {
  readonly log: (line: string) => void;
  readonly onStep: (report: StepReport) => void;
  readonly onEvaluation: (report: EvaluationReport) => void;
  /** Fires on SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
}

/**
 * Runs a training run with progress on stderr and the summary on stdout: a table for a person, or with
 * `json` one JSON object on the last line for a program.
 */
export async function reportRun(json: boolean, run: (hooks: RunHooks) => Promise<RunSummary>): Promise<void> {
  const progress = createProgressReporter();
  const summary = await runUntilSignal((signal) =>
    run({
      log: (line) => progress.log(line),
      onStep: (report) => progress.step(report),
      onEvaluation: (report) => progress.evaluation(report),
      signal,
    }),
  ).finally(() => progress.stop());
  process.stdout.write(json ? `${JSON.stringify(summary)}\n` : `${formatSummary(summary)}\n`);
}
