import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Evaluation, TrainingState } from '@callosum/core';
import { parseMetricsLine, type RecordedEvent } from '../telemetry/events.js';

/** The evaluation at the step a resumed run continues from, if that step ended an epoch. */
export interface ResumedEvaluation {
  /** The epoch the step ended. */
  readonly epoch: number;
  /**
   * The evaluation of that step as metrics.jsonl recorded it; undefined when the run stopped before it
   * was recorded (the evaluation was interrupted), and the resumed run owes it.
   */
  readonly recorded: Evaluation | undefined;
}

/**
 * Whether the step a resumed run continues from ended an epoch (or the run), and if so, the evaluation
 * of that step which the run's metrics file holds. The loop evaluates after the checkpoint of an epoch's
 * last step, so a run stopped in between (killed, or stopped with a signal) has the checkpoint but not
 * the evaluation: the resumed run does it before anything else. An evaluation that was recorded is not
 * done again. Undefined when the step ended no epoch, or the run evaluates nothing.
 */
export async function resumedEvaluation(
  state: TrainingState,
  metricsFile: string,
  evaluates: boolean,
): Promise<ResumedEvaluation | undefined> {
  if (!evaluates || state.step === 0) return undefined;
  const epoch = state.sampler.positionAtStep(state.step - 1).epoch;
  if (!state.endedEpoch(epoch)) return undefined;
  return { epoch, recorded: await recordedEvaluation(metricsFile, state.step) };
}

/** The last evaluation of `step` in the metrics file; lines that do not parse (one cut short) are skipped. */
async function recordedEvaluation(metricsFile: string, step: number): Promise<Evaluation | undefined> {
  const stream = createReadStream(metricsFile, 'utf8');
  // A run stopped before it wrote any metrics has no file: nothing was recorded.
  const opened = await new Promise<boolean>((resolve) => {
    stream.once('open', () => resolve(true)).once('error', () => resolve(false));
  });
  if (!opened) return undefined;
  let found: Evaluation | undefined;
  for await (const line of createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (!line.includes('"type":"evaluation"')) continue;
    const record = parsed(line);
    if (record?.type !== 'evaluation' || record.step !== step) continue;
    found = {
      loss: measured(record.testLoss),
      ...(record.testAccuracy === null ? {} : { accuracy: record.testAccuracy }),
      metrics: Object.fromEntries(
        Object.entries(record.testMetrics ?? {}).map(([name, value]) => [name, measured(value)]),
      ),
    };
  }
  return found;
}

function parsed(line: string): RecordedEvent | undefined {
  try {
    return parseMetricsLine(line);
  } catch {
    return undefined;
  }
}

/** JSON has no NaN: a figure that was not measured is written as null. */
function measured(value: number | null): number {
  return value ?? Number.NaN;
}
