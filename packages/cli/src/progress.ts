import type { EvaluationReport, StepReport } from '@callosum/coordinator';
import { counted } from '@callosum/core';
import { formatProgressLine, type ProgressFields } from './progress-line.js';

export interface ProgressReporter {
  step(report: StepReport): void;
  evaluation(report: EvaluationReport): void;
  /** A log line that must not tear the bar. */
  log(line: string): void;
  stop(): void;
}

const PLAIN_INTERVAL_MS = 5_000;
const ERASE_LINE = '\x1b[2K';

/**
 * A live bar on a terminal; plain periodic lines otherwise (CI logs, pipes, Kubernetes). Both go to
 * stderr, so stdout carries only results (and the --json summary).
 */
export function createProgressReporter(stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  return stream.isTTY ? barReporter(stream) : lineReporter(stream);
}

function describe(report: StepReport): Pick<ProgressFields, 'epoch' | 'loss' | 'acc' | 'rate' | 'workers'> {
  return {
    epoch: String(report.epoch + 1),
    loss: report.loss.toFixed(4),
    acc: Number.isNaN(report.accuracy) ? undefined : `${(report.accuracy * 100).toFixed(1)}%`,
    rate: report.samplesPerSecond.toFixed(0),
    workers: counted(report.workers, 'worker'),
  };
}

function evaluationLine(report: EvaluationReport): string {
  const figures = [
    ...(Number.isNaN(report.testAccuracy)
      ? []
      : [`test accuracy ${(report.testAccuracy * 100).toFixed(2)}%`]),
    `test loss ${report.testLoss.toFixed(4)}`,
    ...Object.entries(report.testMetrics)
      .filter(([name]) => name !== 'accuracy')
      .map(([name, value]) => `test ${name} ${value.toPrecision(5)}`),
  ];
  // The step too: a run shorter than an epoch, or one that stops mid-epoch, is evaluated where it ends.
  return `epoch ${report.epoch + 1}, step ${report.step}: ${figures.join(', ')}`;
}

/** Smooths samples/s over recent steps so the bar does not flicker. */
function smoother(): (report: StepReport) => StepReport {
  let average: number | undefined;
  return (report) => {
    average = average === undefined ? report.samplesPerSecond : 0.9 * average + 0.1 * report.samplesPerSecond;
    return { ...report, samplesPerSecond: average };
  };
}

/**
 * One status line at the bottom, redrawn in place: `\r` and erase-line, never cursor save/restore (a
 * saved position goes stale once the screen scrolls, and later text then lands on earlier lines). Log
 * lines are printed where the bar was and the bar is redrawn under them; stop leaves the cursor below.
 */
function barReporter(stream: NodeJS.WriteStream): ProgressReporter {
  const smooth = smoother();
  let current: string | undefined;
  let firstStep: { step: number; at: number } | undefined;
  const draw = () => {
    if (current !== undefined) stream.write(`\r${ERASE_LINE}${current}`);
  };
  return {
    step(report) {
      const now = performance.now();
      firstStep ??= { step: report.step, at: now };
      const done = report.step - firstStep.step;
      const etaSeconds =
        done > 0 ? (((now - firstStep.at) / done) * (report.totalSteps - report.step)) / 1000 : undefined;
      const fields = {
        ...describe(smooth(report)),
        step: report.step,
        totalSteps: report.totalSteps,
        etaSeconds,
      };
      current = formatProgressLine(fields, stream.columns ?? 80);
      draw();
    },
    evaluation(report) {
      this.log(evaluationLine(report));
    },
    log(line) {
      stream.write(current === undefined ? `${line}\n` : `\r${ERASE_LINE}${line}\n`);
      draw();
    },
    stop() {
      if (current !== undefined) stream.write('\n');
      current = undefined;
    },
  };
}

function lineReporter(stream: NodeJS.WriteStream): ProgressReporter {
  const smooth = smoother();
  let lastPrinted = 0;
  return {
    step(report) {
      const smoothed = smooth(report);
      const now = Date.now();
      if (now - lastPrinted < PLAIN_INTERVAL_MS && report.step !== report.totalSteps) return;
      lastPrinted = now;
      const d = describe(smoothed);
      stream.write(
        `step ${report.step}/${report.totalSteps} epoch ${d.epoch} loss ${d.loss}${d.acc === undefined ? '' : ` acc ${d.acc}`} ${d.rate} samples/s ${d.workers}\n`,
      );
    },
    evaluation(report) {
      this.log(evaluationLine(report));
    },
    log(line) {
      stream.write(`${line}\n`);
    },
    stop() {},
  };
}
