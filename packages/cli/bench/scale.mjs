/**
 * A calibrated scaling model for Callosum (issue 15; a benchmark, not a test: it asserts nothing).
 *
 * 1. Trains the default model at the default global batch on the wasm backend with 1–4 local workers
 *    (`trainWithLocalWorkers`: a coordinator in-process plus real `callosum worker` processes on
 *    loopback), in both topologies, star and ring, each configuration in its own child process, and keeps
 *    the coordinator's StepReports of the steps after a warm-up.
 * 2. Measures, apart from training, what a message costs on a loopback WebSocket with the product's
 *    codec (loopback-link.mjs) and what checking and adding a gradient costs (gradient-fold.mjs).
 * 3. Calibrates the model's costs from those (scale-calibration.mjs), predicts each measured
 *    configuration's throughput with the model (scaling-model.mjs) and prints predicted against
 *    measured, with the relative error: by costs calibrated on every run, and by costs calibrated on the
 *    other runs only (the run held out).
 * 4. Predicts 8, 32 and 128 workers with a GPU each at 10, 25 and 100 Gbit/s, for the reference CNN and
 *    for a model of 25 million parameters, in both topologies (scale-tables.mjs).
 *
 * Tables go to stdout, progress to stderr. Run it from the repository root with `pnpm bench:scale`, which
 * builds the cli (and what it depends on) first: plain ESM importing the built `../dist/index.js`.
 *
 * Options (e.g. `pnpm bench:scale --workers 1,2 --steps 20`):
 *   --workers 1,2,3,4        worker counts, each run in both topologies (default: 1,2,3,4); the compute
 *                            fit needs two of them with a core per thread
 *   --steps 60               measured steps per configuration and process, after the warm-up (default: 60)
 *   --repeats 2              processes per configuration (default: 2), in passes over every configuration;
 *                            their steps are pooled (one process can run 10–20% faster or slower than the
 *                            next of the same configuration on an idle machine)
 *   --warmup 10              warm-up steps per configuration, not measured (default: 10)
 *   --threads 1              compute threads per worker (default: 1, so that a worker is one unit of
 *                            compute, as a GPU is, and sharing the cores is modelled simply)
 *   --batch-size 128         global batch size (default: DEFAULT_TRAINING_CONFIG.batchSize); one more
 *                            short run, star with one worker, cuts 8 times as many samples per step
 *   --rounds 40              rounds of the loopback microbenchmark (default: 40)
 *   --gpu-step-ms 2          assumed GPU time of one 128-sample step of the reference CNN (default: 2)
 *   --large-gpu-step-ms 136  assumed GPU time of one 128-sample step of the 25M-parameter model
 *                            (default: 136; scale-tables.mjs says where both figures come from)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildModel, DEFAULT_TRAINING_CONFIG, initBackend, parameterLayout } from '@callosum/core';
import {
  errorReason,
  forkForResult,
  loadLine,
  machineLines,
  nonNegativeInteger,
  positiveInteger,
  positiveNumber,
  scriptArgs,
  sendToParent,
  stepProgress,
  sum,
  trainingForSteps,
  watchOtherCpu,
} from '../../../tools/bench-support.mjs';
import { trainWithLocalWorkers, tuneHeapForTraining } from '../dist/index.js';
import { measureGradientFold } from './gradient-fold.mjs';
import { measureLoopback } from './loopback-link.mjs';
import { calibrateCosts } from './scale-calibration.mjs';
import { calibrationLines, comparisonLines, predictionLines } from './scale-tables.mjs';

const BACKEND = 'wasm';
const TOPOLOGIES = ['star', 'ring'];
/** Payloads of the loopback round trips: a control message, a data shard's size, up to twice the model. */
const LOOPBACK_PAYLOAD_BYTES = [64, 100_000, 1_000_000, 2_800_000, 5_600_000];
const LOOPBACK_WARMUP = 5;
/**
 * The run that times cutting a larger batch (star, one worker, this many times the batch, few steps): with
 * the runs at the batch, it separates the coordinator's cost per sample from its cost per step.
 */
const PREPARE_RUN = { batchFactor: 8, steps: 10, warmup: 3 };
/** Gradients per timed reduction, and reductions timed after a warm-up. */
const FOLD = { shards: 4, rounds: 20, warmup: 3 };

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    child: { type: 'string' },
    workers: { type: 'string', default: '1,2,3,4' },
    steps: { type: 'string', default: '60' },
    repeats: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '10' },
    threads: { type: 'string', default: '1' },
    'batch-size': { type: 'string', default: String(DEFAULT_TRAINING_CONFIG.batchSize) },
    rounds: { type: 'string', default: '40' },
    'gpu-step-ms': { type: 'string', default: '2' },
    'large-gpu-step-ms': { type: 'string', default: '136' },
  },
  strict: true,
});

const workerCounts = values.workers
  .split(',')
  .filter((count) => count !== '')
  .map((count) => positiveInteger('--workers', count));
const steps = positiveInteger('--steps', values.steps);
const repeats = positiveInteger('--repeats', values.repeats);
const warmup = nonNegativeInteger('--warmup', values.warmup);
const threads = positiveInteger('--threads', values.threads);
const batchSize = positiveInteger('--batch-size', values['batch-size']);
const rounds = positiveInteger('--rounds', values.rounds);
const gpuStepMs = positiveNumber('--gpu-step-ms', values['gpu-step-ms']);
const largeGpuStepMs = positiveNumber('--large-gpu-step-ms', values['large-gpu-step-ms']);
const training = trainingForSteps({ ...DEFAULT_TRAINING_CONFIG, batchSize }, warmup + steps);
const cores = os.availableParallelism();

if (values.child === undefined) {
  await runParent();
} else {
  await runChild(values.child);
}

// ---------------------------------------------------------------------------------------------------------
// Parent: the runs, the microbenchmarks, then the tables.

async function runParent() {
  const parameters = await parameterCount();
  const machine = machineLines([
    `Run:     model ${training.model.name} (${parameters.toLocaleString('en-US')} parameters), global batch ` +
      `${batchSize}, backend ${BACKEND}, ${threads} compute thread(s) per worker, ${repeats} process(es) per ` +
      `configuration, each ${warmup} warm-up + ${steps} measured steps`,
  ]);
  process.stderr.write(`${machine.join('\n')}\n`);

  const results = [];
  for (let pass = 1; pass <= repeats; pass += 1) {
    for (const workers of workerCounts) {
      // Both topologies at one worker count back to back, so that a change in load falls on both alike.
      for (const topology of TOPOLOGIES) {
        process.stderr.write(
          `[${label(topology, workers)}] pass ${pass}/${repeats}: starting child process\n`,
        );
        results.push(await runChildProcess(topology, workers, { steps, warmup, batchSize }));
      }
    }
  }
  const runs = poolRepeats(results);
  const prepareBatch = PREPARE_RUN.batchFactor * batchSize;
  process.stderr.write(`[${label('star', 1)}, batch ${prepareBatch}] starting child process\n`);
  const prepareRun = await runChildProcess('star', 1, { ...PREPARE_RUN, batchSize: prepareBatch });
  if (!prepareRun.ok) throw new Error(`the run of batch ${prepareBatch} failed: ${prepareRun.reason}`);
  const microbenchmarkCpu = watchOtherCpu();
  process.stderr.write('[loopback] round trips and bursts over a WebSocket\n');
  const loopback = await measureLoopback({
    payloadBytes: LOOPBACK_PAYLOAD_BYTES,
    rounds,
    warmup: LOOPBACK_WARMUP,
  });
  process.stderr.write('[fold] checking and adding gradients\n');
  const foldMsPerByte = measureGradientFold({ parameters, ...FOLD });
  const microbenchmarkOtherCores = microbenchmarkCpu.stop();

  const measured = runs.filter((run) => run.ok);
  const calibration = { loopback, foldMsPerByte, parameters, batchSize, threads, cores, prepareRun };
  const costs = calibrateCosts(measured, calibration);
  const failures = runs
    .filter((run) => !run.ok)
    .map((run) => `${label(run.topology, run.workers)}: failed: ${run.reason}`);
  const lines = [
    `Scaling model, model "${training.model.name}", global batch ${batchSize}, backend ${BACKEND}`,
    '',
    ...machine,
    loadLine('end'),
    '',
    ...calibrationLines(costs, calibration),
    ...(microbenchmarkOtherCores === undefined
      ? []
      : [
          `Other processes kept ${microbenchmarkOtherCores.toFixed(2)} cores busy during the microbenchmarks.`,
        ]),
    '',
    ...comparisonLines(measured, costs, calibration),
    ...(failures.length > 0 ? ['', ...failures] : []),
    '',
    ...predictionLines({ costs, parameters, gpuStepMs, largeGpuStepMs }),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * One run per configuration, in the order they first ran: the steps of all its processes that finished,
 * the mean of their other processes' CPU and the highest load; failed if none finished.
 */
function poolRepeats(results) {
  const configurations = new Map();
  for (const result of results) {
    const key = `${result.topology}:${result.workers}`;
    configurations.set(key, [...(configurations.get(key) ?? []), result]);
  }
  return [...configurations.values()].map((repeated) => {
    const finished = repeated.filter((result) => result.ok);
    const { topology, workers } = repeated[0];
    if (finished.length === 0) return repeated[0];
    const watched = finished.map((result) => result.otherCores).filter((cores) => cores !== undefined);
    return {
      topology,
      workers,
      ok: true,
      steps: finished.flatMap((result) => result.steps),
      otherCores: watched.length === 0 ? undefined : sum(watched) / watched.length,
      load: Math.max(...finished.map((result) => result.load)),
    };
  });
}

/** The default model's parameter count (on the cpu backend: this process trains nothing). */
async function parameterCount() {
  await initBackend('cpu');
  const model = buildModel(training.model, { seed: training.seed });
  const count = parameterLayout(model).totalSize;
  model.dispose();
  return count;
}

function runChildProcess(topology, workers, run) {
  return forkForResult(
    import.meta.url,
    [
      ...['--child', `${topology}:${workers}`, '--steps', String(run.steps), '--warmup', String(run.warmup)],
      ...['--threads', String(threads), '--batch-size', String(run.batchSize)],
    ],
    {
      // The child's stdout goes to our stderr, so stdout carries only the tables.
      stdio: ['ignore', 2, 2, 'ipc'],
      failed: (reason) => ({ topology, workers, ok: false, reason }),
    },
  );
}

function label(topology, workers) {
  return `${topology}, ${workers} worker${workers === 1 ? '' : 's'}`;
}

// ---------------------------------------------------------------------------------------------------------
// Child: one configuration.

async function runChild(config) {
  // As the `callosum` command does.
  tuneHeapForTraining();
  const [topology, count] = config.split(':');
  const workers = Number(count);
  const name = label(topology, workers);
  const progress = stepProgress(name);
  const outDir = await mkdtemp(path.join(os.tmpdir(), 'callosum-bench-scale-'));
  const measured = [];
  // From the end of the warm-up (from the start without one) to the last step.
  let otherCpu = warmup === 0 ? watchOtherCpu() : undefined;
  let otherCores;
  try {
    await trainWithLocalWorkers({
      workers,
      threads,
      topology,
      backend: BACKEND,
      training,
      outDir,
      // No dashboard and no /metrics: nothing in the run but training.
      liveViews: false,
      log: (line) => process.stderr.write(`[${name}] ${line}\n`),
      onStep(report) {
        progress(report.step, report.totalSteps, report.samplesPerSecond);
        if (report.step > warmup) measured.push(stepFigures(report));
        if (report.step === warmup) otherCpu = watchOtherCpu();
        if (report.step === report.totalSteps) otherCores = otherCpu?.stop();
      },
    });
    const complete = measured.filter((step) => step.workers === workers);
    if (complete.length < measured.length) {
      process.stderr.write(
        `[${name}] warning: ${measured.length - complete.length} steps ran on fewer than ${workers} workers; left out\n`,
      );
    }
    await sendToParent({ topology, workers, ok: true, load: os.loadavg()[0], otherCores, steps: complete });
  } catch (error) {
    const reason = errorReason(error);
    process.stderr.write(`[${name}] failed: ${reason}\n`);
    await sendToParent({ topology, workers, ok: false, reason });
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

/** What the model is calibrated on and compared with, from one StepReport. */
function stepFigures(report) {
  return {
    stepMs: report.stepMs,
    samples: sum(report.perWorker.map((worker) => worker.samples)),
    workers: report.workers,
    prepareMs: report.timeline.prepareMs,
    optimizerMs: report.timeline.optimizerMs,
    shards: report.perWorker.map(({ samples, computeMs }) => ({ samples, computeMs })),
  };
}
