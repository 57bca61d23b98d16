import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EvaluationReport, StepReport } from '@callosum/coordinator';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { lastJsonLine, SHORT_RUN, shortRun, temporaryDirectory, trainingUntil } from './processes.js';
import { finishedShortRun } from './shared-run.js';

/** What Perfetto and chrome://tracing need of a JSON trace: complete events and the metadata naming tracks. */
const id = z.number().int().nonnegative();
const traceSchema = z.object({
  displayTimeUnit: z.enum(['ms', 'ns']).optional(),
  traceEvents: z.array(
    z.discriminatedUnion('ph', [
      z.strictObject({
        ph: z.literal('X'),
        name: z.string().min(1),
        cat: z.string().optional(),
        ts: z.number().nonnegative(),
        dur: z.number().nonnegative(),
        pid: id,
        tid: id,
        args: z.record(z.string(), z.unknown()).optional(),
      }),
      z.strictObject({
        ph: z.literal('M'),
        name: z.enum(['process_name', 'thread_name', 'thread_sort_index']),
        pid: id,
        tid: id,
        args: z.union([z.object({ name: z.string().min(1) }), z.object({ sort_index: z.number() })]),
      }),
    ]),
  ),
});
type Trace = z.infer<typeof traceSchema>;
type Span = Extract<Trace['traceEvents'][number], { ph: 'X' }>;

interface RunRecord {
  readonly steps: readonly StepReport[];
  readonly evaluations: readonly EvaluationReport[];
}

async function runRecord(runDir: string): Promise<RunRecord> {
  const lines = (await readFile(join(runDir, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string });
  return {
    steps: lines.filter((line) => line.type === 'step') as unknown as StepReport[],
    evaluations: lines.filter((line) => line.type === 'evaluation') as unknown as EvaluationReport[],
  };
}

/** The trace, checked against the format; its spans by track name (the thread_name metadata). */
async function traceOf(path: string): Promise<Map<string, Span[]>> {
  const trace = traceSchema.parse(JSON.parse(await readFile(path, 'utf8')));
  const names = new Map<number, string>();
  for (const event of trace.traceEvents)
    if (event.ph === 'M' && event.name === 'thread_name' && 'name' in event.args)
      names.set(event.tid, event.args.name);
  const tracks = new Map<string, Span[]>();
  for (const event of trace.traceEvents) {
    if (event.ph !== 'X') continue;
    const track = names.get(event.tid);
    if (track === undefined) throw new Error(`span ${event.name} on an unnamed track ${event.tid}`);
    tracks.set(track, [...(tracks.get(track) ?? []), event]);
  }
  return tracks;
}

function spanOf(spans: readonly Span[], name: string, step: number): Span {
  const found = spans.filter((span) => span.name === name && span.args?.step === step);
  if (found.length !== 1) throw new Error(`${found.length} spans ${name} of step ${step}`);
  return found[0] as Span;
}

/** Every step, on every track, as metrics.jsonl has it: durations agree, and each track's spans are in order. */
function expectTraceOf(tracks: Map<string, Span[]>, record: RunRecord, workers: number): void {
  const coordinator = tracks.get('coordinator') ?? [];
  const workerTracks = [...tracks.keys()].filter((name) => name.startsWith('worker '));
  expect(workerTracks).toHaveLength(workers);
  const ms = (span: Span) => span.dur / 1000;
  for (const step of record.steps) {
    const whole = spanOf(coordinator, `step ${step.step}`, step.step);
    expect(ms(whole)).toBeCloseTo(step.stepMs, 3);
    const reduce = spanOf(coordinator, 'reduce', step.step);
    const optimizer = spanOf(coordinator, 'optimizer', step.step);
    expect(ms(reduce) + ms(optimizer)).toBeCloseTo(step.updateMs, 3);
    for (const name of ['prepare', 'broadcast', 'reduce', 'optimizer']) {
      const part = spanOf(coordinator, name, step.step);
      expect(part.ts, name).toBeGreaterThanOrEqual(whole.ts - 0.01);
      expect(part.ts + part.dur, name).toBeLessThanOrEqual(whole.ts + whole.dur + 0.01);
    }
    expect(step.perWorker).toHaveLength(workers);
    for (const worker of step.perWorker) {
      const track = workerTracks.find((name) => name.startsWith(`worker ${worker.id} `));
      const spans = tracks.get(track ?? '') ?? [];
      const [receive, compute, send, wait] = ['receive', 'compute', 'send', 'wait'].map((name) =>
        spanOf(spans, name, step.step),
      ) as [Span, Span, Span, Span];
      expect(ms(compute)).toBeCloseTo(worker.computeMs, 3);
      expect(ms(receive) + ms(send)).toBeCloseTo(worker.transferMs, 3);
      expect(ms(wait)).toBeCloseTo(worker.waitMs, 3);
      // In order, within the step: the wait ends when the coordinator starts reducing.
      const inOrder = [receive, compute, send, wait];
      for (const [index, span] of inOrder.entries()) {
        const next = inOrder[index + 1];
        if (next !== undefined) expect(span.ts + span.dur).toBeLessThanOrEqual(next.ts + 0.01);
      }
      expect(receive.ts).toBeGreaterThanOrEqual(whole.ts - 0.01);
      expect(wait.ts + wait.dur).toBeCloseTo(reduce.ts, 0);
    }
  }
  const evaluations = coordinator.filter((span) => span.name === 'evaluation');
  expect(evaluations.map((span) => ms(span))).toEqual(
    record.evaluations.map((evaluation) => expect.closeTo(evaluation.evaluationMs, 3)),
  );
}

describe('--trace', () => {
  it('writes a trace event file with every step on every track, whose durations agree with metrics.jsonl', async () => {
    const { runDir, tracePath, output } = await finishedShortRun();
    expect(output.code, output.stderr).toBe(0);
    expect(lastJsonLine<{ steps: number }>(output).steps).toBe(SHORT_RUN.steps);
    const record = await runRecord(runDir);
    expect(record.steps).toHaveLength(SHORT_RUN.steps);
    expect(record.evaluations).toHaveLength(1);
    expectTraceOf(await traceOf(tracePath), record, 2);
  }, 300_000);

  it('CALLOSUM_TRACE: a run stopped early still leaves valid JSON, with the steps it took', async () => {
    const runDir = await temporaryDirectory('trace-stopped');
    const tracePath = join(runDir, 'trace.json');
    const run = await trainingUntil(['train', ...shortRun(), '--out', runDir], runDir, 5, {
      CALLOSUM_TRACE: tracePath,
    });
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(1);
    const record = await runRecord(runDir);
    expect(record.steps.length).toBeGreaterThanOrEqual(5);
    expect(record.steps.length).toBeLessThan(SHORT_RUN.steps);
    expectTraceOf(await traceOf(tracePath), record, 2);
  }, 180_000);
});
