import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgressReporter } from './progress.js';

/** A reporter writing plain lines (not a terminal) into a string. */
function plainReporter() {
  const stream = new PassThrough();
  let written = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => {
    written += chunk;
  });
  const reporter = createProgressReporter(stream as unknown as NodeJS.WriteStream);
  return { reporter, written: () => written };
}

describe('plain progress lines', () => {
  it('name the epoch and the step of an evaluation (a run shorter than an epoch is evaluated mid-epoch)', () => {
    const { reporter, written } = plainReporter();
    reporter.evaluation({
      epoch: 0,
      step: 5,
      testLoss: 0.3,
      testAccuracy: 0.912,
      testMetrics: { accuracy: 0.912, mae: 0.123456 },
      count: 100,
      evaluationMs: 10,
    });
    reporter.stop();
    expect(written()).toBe('epoch 1, step 5: test accuracy 91.20%, test loss 0.3000, test mae 0.12346\n');
  });

  it('count the workers in the number the count takes', () => {
    const { reporter, written } = plainReporter();
    // The fields a progress line shows; it reads nothing else of a StepReport.
    const step = {
      step: 1,
      totalSteps: 10,
      epoch: 0,
      loss: 1,
      accuracy: 0.5,
      learningRate: 0.001,
      samplesPerSecond: 100,
    };
    reporter.step({ ...step, workers: 1 } as Parameters<typeof reporter.step>[0]);
    reporter.stop();
    expect(written()).toMatch(/ 1 worker\n$/);
  });
});
