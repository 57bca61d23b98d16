import type { RunSummary } from '@callosum/coordinator';

/** The end-of-run report for a person: one aligned table. */
export function formatSummary(summary: RunSummary): string {
  const rows: [string, string][] = [
    ...testRows(summary),
    ['steps', `${summary.steps} (${summary.epochs.toFixed(2)} epochs)`],
    ['workers', `${summary.workers} (${summary.backend || 'none'})`],
    ['throughput', throughput(summary)],
    ['wall time', `${summary.seconds.toFixed(1)} s`],
    ['redone shards', String(summary.redoneShards)],
    // Only a ring run redoes whole steps: a star run's table leaves the row out.
    ...(summary.redoneSteps > 0 ? [['redone steps', String(summary.redoneSteps)] as [string, string]] : []),
    ['model', summary.modelDir],
    ['metrics', summary.metricsFile],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return ['Training complete', ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`)].join(
    '\n',
  );
}

/** Accuracy when the task measures it, the loss, and every other metric by name. */
function testRows(summary: RunSummary): [string, string][] {
  const others = Object.entries(summary.testMetrics).filter(([name]) => name !== 'accuracy');
  return [
    ...(Number.isNaN(summary.testAccuracy)
      ? []
      : [['test accuracy', `${(summary.testAccuracy * 100).toFixed(2)} %`] as [string, string]]),
    // NaN only when nothing was evaluated: printed as a figure, it would read as a diverged run.
    [
      'test loss',
      Number.isNaN(summary.testLoss)
        ? 'none (the task has no test or validation split)'
        : summary.testLoss.toFixed(4),
    ],
    ...others.map(([name, value]): [string, string] => [`test ${name}`, value.toPrecision(5)]),
  ];
}

/** Samples/s over the steps this process trained; a run resumed after its last step trained none. */
function throughput(summary: RunSummary): string {
  if (Number.isNaN(summary.samplesPerSecond)) return 'none (no step left to train after resuming)';
  return `${Math.round(summary.samplesPerSecond).toLocaleString('en-US')} samples/s`;
}
