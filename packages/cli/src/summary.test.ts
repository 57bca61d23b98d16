import type { RunSummary } from '@callosum/coordinator';
import { describe, expect, it } from 'vitest';
import { formatSummary } from './summary.js';

// The fields the table shows; the rest of a RunSummary is not read.
const summary = {
  testAccuracy: Number.NaN,
  testLoss: 0.12345,
  testMetrics: { mae: 0.2 },
  steps: 20,
  epochs: 2,
  workers: 2,
  backend: 'wasm',
  samplesPerSecond: 1000,
  seconds: 3,
  redoneShards: 0,
  redoneSteps: 0,
  modelDir: 'runs/x/model',
  metricsFile: 'runs/x/metrics.jsonl',
} as unknown as RunSummary;

describe('the summary table', () => {
  it('shows the test loss, or says there was nothing to evaluate (NaN would read as a diverged run)', () => {
    expect(formatSummary(summary)).toMatch(/\n {2}test loss +0\.1235\n/);
    expect(formatSummary({ ...summary, testLoss: Number.NaN, testMetrics: {} })).toMatch(
      /\n {2}test loss +none \(the task has no test or validation split\)\n/,
    );
  });
});
