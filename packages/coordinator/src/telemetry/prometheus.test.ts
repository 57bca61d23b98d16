import { readFile } from 'node:fs/promises';
import { loadMnist } from '@callosum/core';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator.js';
import {
  refusedUpgrade,
  runDirectoryPerTest,
  runWithWorkerProcesses,
} from '../test-support/worker-processes.js';
import { type CoordinatorEvent, parseMetricsLine } from './events.js';

const newRunDirectory = runDirectoryPerTest('callosum-prometheus-');
type StepLine = Extract<CoordinatorEvent, { type: 'step' }>;

const SERIES = [
  'callosum_step',
  'callosum_total_steps',
  'callosum_epoch',
  'callosum_samples_total',
  'callosum_loss',
  'callosum_accuracy',
  'callosum_learning_rate',
  'callosum_step_duration_seconds',
  'callosum_worker_compute_seconds',
  'callosum_worker_transfer_seconds',
  'callosum_worker_wait_seconds',
  'callosum_workers',
  'callosum_redone_shards_total',
  'callosum_redone_steps_total',
  'callosum_late_shards_total',
  'callosum_discarded_messages_total',
  'callosum_evictions_total',
  'callosum_rejected_messages_total',
  'callosum_auth_failures_total',
  'callosum_refused_connections_total',
  'callosum_sent_bytes_total',
  'callosum_received_bytes_total',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_heap_size_used_bytes',
];

/** A parsed scrape, by family name. */
function familiesOf(text: string): Map<string, ParsedFamily> {
  return new Map(parsePrometheusTextFormat(text).map((family) => [family.name, family]));
}

/** The sample of a family with these labels (among others). */
function sampleOf(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string>) {
  return families
    .get(name)
    ?.metrics.find((metric) =>
      Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value),
    );
}

function sampleValue(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}) {
  const value = sampleOf(families, name, labels)?.value;
  if (value === undefined) throw new Error(`no sample of ${name} ${JSON.stringify(labels)}`);
  return Number(value);
}

/**
 * The parser (1.1.1) merges the buckets of every label set of a histogram into one and drops labelled
 * _sum and _count lines; without the bucket lines it keeps each label set's _sum and _count.
 */
function histogramTotalsOf(text: string): Map<string, ParsedFamily> {
  return familiesOf(
    text
      .split('\n')
      .filter((line) => !/^\w+_bucket[{ ]/.test(line))
      .join('\n'),
  );
}

function histogramOf(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}) {
  const sample = sampleOf(families, name, labels);
  if (sample?.count === undefined) throw new Error(`no histogram ${name} ${JSON.stringify(labels)}`);
  return { count: Number(sample.count), sum: Number(sample.sum) };
}

describe('GET /metrics', () => {
  it('serves the listed series, and their values agree with metrics.jsonl at the step scraped (two worker processes)', async () => {
    const outDir = await newRunDirectory();
    const token = 'prometheus-test-token-0123456789';
    const scrapes: Promise<string | undefined>[] = [];
    let url = '';
    const scrape = () =>
      fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } }).then(
        async (response) => {
          expect(response.status).toBe(200);
          expect(response.headers.get('content-type')).toContain('text/plain');
          return response.text();
        },
        // The last scrapes may meet a coordinator that has finished and closed.
        () => undefined,
      );
    const coordinator = await startCoordinator({
      outDir,
      dataset: await loadMnist(),
      token,
      minWorkers: 2,
      training: {
        model: { name: 'mlp', options: { hidden: [16] } },
        batchSize: 32,
        maxSteps: 20,
        schedule: { kind: 'cosine', totalSteps: 0, warmupSteps: 5 },
        maxShift: 0,
      },
      // Scraped while the next step runs: the values must be those of one step, whichever it is.
      onStep: () => void scrapes.push(scrape()),
      log: () => {},
    });
    url = `http://127.0.0.1:${coordinator.port}`;
    const before = familiesOf((await scrape()) ?? '');
    expect(sampleValue(before, 'callosum_workers', { state: 'healthy' })).toBe(0);
    for (const kind of ['message', 'gradient', 'evaluation']) {
      expect(sampleValue(before, 'callosum_rejected_messages_total', { kind })).toBe(0);
    }
    // An upgrade without the token's proof: one authentication failure.
    await refusedUpgrade(coordinator.url);
    const { summary, exitCodes } = await runWithWorkerProcesses(coordinator, token, ['one', 'two']);
    expect(exitCodes).toEqual([0, 0]);

    const lines = (await readFile(summary.metricsFile, 'utf8')).trim().split('\n').map(parseMetricsLine);
    const steps = lines.filter((line): line is StepLine & { time: string } => line.type === 'step');
    const parameterBytes = 4 * (784 * 16 + 16 + 16 * 10 + 10);
    const texts = (await Promise.all(scrapes)).filter((text) => text !== undefined);
    expect(texts.length).toBeGreaterThanOrEqual(10);
    for (const text of texts) {
      const families = familiesOf(text);
      const totals = histogramTotalsOf(text);
      for (const name of SERIES) expect(families.has(name), name).toBe(true);
      const step = sampleValue(families, 'callosum_step');
      const line = steps.find((candidate) => candidate.step === step);
      if (line === undefined) throw new Error(`no step ${step} in metrics.jsonl`);
      const upTo = steps.filter((candidate) => candidate.step <= step);
      expect(sampleValue(families, 'callosum_total_steps')).toBe(line.totalSteps);
      expect(sampleValue(families, 'callosum_epoch')).toBe(line.epoch);
      expect(sampleValue(families, 'callosum_loss')).toBe(line.loss);
      expect(sampleValue(families, 'callosum_accuracy')).toBe(line.accuracy);
      expect(sampleValue(families, 'callosum_learning_rate')).toBe(line.learningRate);
      expect(sampleValue(families, 'callosum_samples_total')).toBe(32 * step);
      const stepSeconds = histogramOf(totals, 'callosum_step_duration_seconds');
      expect(stepSeconds.count).toBe(step);
      expect(Number(families.get('callosum_step_duration_seconds')?.metrics[0]?.buckets?.['+Inf'])).toBe(
        step,
      );
      expect(stepSeconds.sum).toBeCloseTo(upTo.reduce((sum, { stepMs }) => sum + stepMs, 0) / 1000, 6);
      for (const worker of ['w1', 'w2']) {
        const shares = upTo.flatMap(({ perWorker }) => perWorker.filter(({ id }) => id === worker));
        for (const [phase, field] of [
          ['compute', 'computeMs'],
          ['transfer', 'transferMs'],
          ['wait', 'waitMs'],
        ] as const) {
          const histogram = histogramOf(totals, `callosum_worker_${phase}_seconds`, { worker });
          expect(histogram.count, `${worker} ${phase}`).toBe(shares.length);
          const expected = shares.reduce((sum, share) => sum + share[field], 0) / 1000;
          expect(histogram.sum, `${worker} ${phase}`).toBeCloseTo(expected, 6);
        }
      }
      // Training, both workers are healthy; each step sends each of them the weights, and gets a gradient back.
      expect(sampleValue(families, 'callosum_workers', { state: 'healthy' })).toBe(2);
      expect(sampleValue(families, 'callosum_sent_bytes_total')).toBeGreaterThan(2 * step * parameterBytes);
      expect(sampleValue(families, 'callosum_received_bytes_total')).toBeGreaterThan(
        2 * step * parameterBytes,
      );
      expect(sampleValue(families, 'callosum_redone_shards_total')).toBe(line.redoneShards);
      expect(sampleValue(families, 'callosum_evictions_total')).toBe(0);
      expect(sampleValue(families, 'callosum_auth_failures_total')).toBe(1);
    }
    // Scrapes were taken across the run, not all at one step.
    const scrapedSteps = new Set(texts.map((text) => sampleValue(familiesOf(text), 'callosum_step')));
    expect(scrapedSteps.size).toBeGreaterThanOrEqual(5);
  });
});
