import type { EvaluationReport, StepReport } from '@callosum/coordinator';
import cliProgress from 'cli-progress';

export interface ProgressReporter {
  step(report: StepReport): void;
  evaluation(report: EvaluationReport): void;
  /** A log line that must not tear the bar. */
  log(line: string): void;
  stop(): void;
}

const PLAIN_INTERVAL_MS = 5_000;

/**
 * A live bar on a terminal; plain periodic lines otherwise (CI logs, pipes, Kubernetes). Both go to
 * stderr, so stdout carries only results (and the --json summary).
 */
export function createProgressReporter(stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  return stream.isTTY ? barReporter(stream) : lineReporter(stream);
}

function describe(report: StepReport): Record<string, string> {
  return {
    epoch: String(report.epoch + 1),
    loss: report.loss.toFixed(4),
    acc: `${(report.accuracy * 100).toFixed(1)}%`,
    rate: report.samplesPerSecond.toFixed(0),
    workers: String(report.workers),
  };
}

/** Smooths samples/s over recent steps so the bar does not flicker. */
function smoother(): (report: StepReport) => StepReport {
  let average: number | undefined;
  return (report) => {
    average = average === undefined ? report.samplesPerSecond : 0.9 * average + 0.1 * report.samplesPerSecond;
    return { ...report, samplesPerSecond: average };
  };
}

function barReporter(stream: NodeJS.WriteStream): ProgressReporter {
  const smooth = smoother();
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format:
        'epoch {epoch} |{bar}| step {value}/{total} | loss {loss} | acc {acc} | {rate} samples/s | {workers} workers | eta {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    step(report) {
      const smoothed = smooth(report);
      if (!started) {
        bar.start(report.totalSteps, report.step, describe(smoothed));
        started = true;
      } else {
        bar.update(report.step, describe(smoothed));
      }
    },
    evaluation(report) {
      this.log(
        `epoch ${report.epoch + 1}: test accuracy ${(report.testAccuracy * 100).toFixed(2)}%, test loss ${report.testLoss.toFixed(4)}`,
      );
    },
    log(line) {
      if (started) {
        // Clear the bar's line, print, and let the next update redraw it.
        stream.write(`\r\x1b[K${line}\n`);
        bar.render();
      } else {
        stream.write(`${line}\n`);
      }
    },
    stop() {
      if (started) bar.stop();
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
        `step ${report.step}/${report.totalSteps} epoch ${d.epoch} loss ${d.loss} acc ${d.acc} ${d.rate} samples/s ${d.workers} workers\n`,
      );
    },
    evaluation(report) {
      this.log(
        `epoch ${report.epoch + 1}: test accuracy ${(report.testAccuracy * 100).toFixed(2)}%, test loss ${report.testLoss.toFixed(4)}`,
      );
    },
    log(line) {
      stream.write(`${line}\n`);
    },
    stop() {},
  };
}
