/**
 * Distributed training throughput benchmark for Callosum (a benchmark, not a test: it asserts nothing).
 *
 * Trains the default model at the default global batch (`DEFAULT_TRAINING_CONFIG`) on the wasm backend,
 * first in one process with `trainLocal`, then with 1, 2 and 4 local worker processes through
 * `trainWithLocalWorkers` (a coordinator in-process plus real `callosum worker` processes on loopback),
 * and prints global training samples/s, speed-up and scaling efficiency, and where a distributed step's
 * time goes, as tables on stdout (progress goes to stderr). Run it from the repository root with
 * `pnpm bench`, which builds the cli (and what it depends on) first: this file is plain ESM JavaScript
 * that imports the built `../dist/index.js`, so it needs no TypeScript runner.
 *
 * Only training steps after a warm-up count. Single process: the time between consecutive `onStep`
 * calls (evaluation is off). Workers: the coordinator's `StepReport.stepMs`, so starting the workers,
 * the test-set evaluation at the end of the run and saving the model do not count.
 *
 * Where a Python with torch is found (tools/pytorch-baseline.mjs), the same run then trains the same model
 * with PyTorch at the same global batch and steps: one process (against the single process) and
 * DistributedDataParallel over gloo with as many processes as workers (against each worker count), one
 * BLAS thread per process, and prints the ratios; otherwise one line says why it was skipped.
 *
 * Each configuration runs in its own child process (this script forked with `--child <config>`): the
 * coordinator initialises the cpu backend in its process, `trainLocal` the wasm one, and a backend
 * cannot be unloaded.
 *
 * Options (e.g. `pnpm bench --steps 50 --workers 2`):
 *   --steps 150        measured steps per configuration, after the warm-up (default: 150)
 *   --warmup 10        warm-up steps per configuration, not measured (default: 10)
 *   --workers 1,2,4    worker counts to run after the single-process baseline (default: 1,2,4); a count
 *                      may say how the run is watched: `2:watched` (a process reading the dashboard's
 *                      event stream and scraping /metrics every second) or `2:no-views` (no dashboard, no
 *                      /metrics: the coordinator's liveViews off). `--workers 2:watched,2:no-views,…`
 *                      measures what the live views cost. `1:threads=2` sets the compute threads per
 *                      worker (`callosum train --threads`; default as there: the usable cores ÷ workers),
 *                      so `--workers 1:threads=1,1:threads=2` measures what a second thread gives one
 *                      worker. `2:ring` trains in the ring topology (`--topology ring`: workers reduce
 *                      among themselves) instead of the star. `2:sockets` sends every frame on the
 *                      sockets (`--shared-memory no`) instead of large ones through files on /dev/shm.
 *                      Modifiers combine: `2:ring:threads=1:no-views`. `2:apart` is no training run
 *                      but its ceiling: 2 `trainLocal` processes at once, each on its share of the
 *                      batch with its own Adam, exchanging nothing, their measured steps started
 *                      together after the warm-up; step i is the slower of their steps i.
 *   --rounds 1         runs every configuration (and PyTorch) this many times, round after round, and
 *                      reports medians and each round's ratio to PyTorch: on a shared machine the speed
 *                      drifts within minutes, so one pair of runs says little (default: 1)
 *   --batch-size 128   global batch size (default: DEFAULT_TRAINING_CONFIG.batchSize)
 *   --micro-batch-size 32   deterministic reduction with micro-batches of this size (default: off)
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DEFAULT_TRAINING_CONFIG, embeddedMnistDir, trainLocal } from '@callosum/core';
import {
  errorReason,
  forkForResult,
  formatNumber,
  formatTable,
  loadLine,
  machineLines,
  median,
  nonNegativeInteger,
  positiveInteger,
  quantile,
  scriptArgs,
  sendToParent,
  shardSizes,
  stepProgress,
  sum,
  trainingForSteps,
} from '../../../tools/bench-support.mjs';
import { comparisonLines, findPytorch, measurePytorch, skipLine } from '../../../tools/pytorch-baseline.mjs';
import { trainWithLocalWorkers, tuneHeapForTraining } from '../dist/index.js';

const BACKEND = 'wasm';

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    child: { type: 'string' },
    // A child of 2:apart: once warmed up, it waits for the parent's go, as its siblings do.
    barrier: { type: 'boolean', default: false },
    steps: { type: 'string', default: '150' },
    warmup: { type: 'string', default: '10' },
    workers: { type: 'string', default: '1,2,4' },
    rounds: { type: 'string', default: '1' },
    'batch-size': { type: 'string', default: String(DEFAULT_TRAINING_CONFIG.batchSize) },
    'micro-batch-size': { type: 'string' },
  },
  strict: true,
});

const steps = positiveInteger('--steps', values.steps);
const warmup = nonNegativeInteger('--warmup', values.warmup);
const roundCount = positiveInteger('--rounds', values.rounds);
const batchSize = positiveInteger('--batch-size', values['batch-size']);
const microBatchSize =
  values['micro-batch-size'] === undefined
    ? undefined
    : positiveInteger('--micro-batch-size', values['micro-batch-size']);
const workerConfigs = values.workers
  .split(',')
  .filter((config) => config !== '')
  .map((config) => {
    const { count, threads } = parseWorkerConfig(config);
    positiveInteger('--workers', count);
    if (threads !== undefined) positiveInteger(`--workers ${config}: threads`, threads);
    return config;
  });

/**
 * A `--workers` entry: a count, then any of `:watched` or `:no-views`, `:threads=N`, `:ring` and
 * `:sockets`, or `:apart` alone. Throws naming the entry when it is none of these.
 */
function parseWorkerConfig(config) {
  const [count = '', ...modifiers] = config.split(':');
  const parsed = { count, views: undefined, threads: undefined, topology: undefined, sockets: false };
  if (modifiers.length === 1 && modifiers[0] === 'apart') return { ...parsed, apart: true };
  for (const modifier of modifiers) {
    if (['watched', 'no-views'].includes(modifier) && parsed.views === undefined) parsed.views = modifier;
    else if (modifier === 'sockets' && !parsed.sockets) parsed.sockets = true;
    else if (modifier.startsWith('threads=') && parsed.threads === undefined)
      parsed.threads = modifier.slice(8);
    else if (modifier === 'ring' && parsed.topology === undefined) parsed.topology = modifier;
    else {
      throw new Error(
        `--workers: "${config}" is not a count followed by :watched or :no-views, :threads=N, :ring and ` +
          ':sockets, or by :apart alone',
      );
    }
  }
  return parsed;
}

/** Every configuration trains with this config. */
const training = {
  ...trainingForSteps({ ...DEFAULT_TRAINING_CONFIG, batchSize }, warmup + steps),
  microBatchSize,
};

if (values.child === undefined) {
  await runParent();
} else {
  await runChild(values.child);
}

// ---------------------------------------------------------------------------------------------------------
// Parent: one child per configuration, then the tables.

async function runParent() {
  const machine = machineLines([
    `Run:     model ${training.model.name}, global batch ${batchSize}, ` +
      `${microBatchSize === undefined ? '' : `micro-batches of ${microBatchSize}, `}backend ${BACKEND}, ` +
      `${warmup} warm-up + ${steps} measured steps per configuration`,
  ]);
  process.stderr.write(`${machine.join('\n')}\n`);

  const configs = ['local', ...workerConfigs];
  const pytorch = findPytorch();
  const rounds = [];
  for (let round = 1; round <= roundCount; round++) {
    const roundResults = [];
    for (const config of configs) {
      process.stderr.write(
        `[${label(config)}] ${roundCount > 1 ? `round ${round}: ` : ''}starting child process\n`,
      );
      roundResults.push(await runChildProcess(config));
    }
    rounds.push({ results: roundResults, pytorch: await measurePytorchCases(pytorch, roundResults) });
  }
  const results = configs.map((_, index) => combineRounds(rounds.map((round) => round.results[index])));

  const baseline = results.find((result) => result.config === 'local' && result.ok);
  const throughputRows = [
    [
      'configuration',
      'batch/worker',
      'samples/s',
      'speed-up',
      'efficiency',
      'median step ms',
      'p90 step ms',
      'steps',
      'load',
      ...(roundCount > 1 ? ['samples/s per round'] : []),
    ],
  ];
  const splitRows = [
    [
      'configuration',
      'compute ms',
      'transfer ms',
      'wait ms',
      'prep ms',
      'update ms',
      'step ms',
      'gap ms',
      'coordinator CPU ms',
    ],
  ];
  const notes = [];
  for (const result of results) {
    if (!result.ok) {
      throughputRows.push([label(result.config), '—', 'failed', '—', '—', '—', '—', '—', '—']);
      notes.push(`${label(result.config)}: failed: ${result.reason}`);
      continue;
    }
    const { measured, samplesPerSecond } = result;
    const stepMs = measured.map((step) => step.stepMs);
    const workers = result.config === 'local' ? 0 : workerCount(result.config);
    const apart = workers > 0 && parseWorkerConfig(result.config).apart === true;
    const speedUp = baseline === undefined ? Number.NaN : samplesPerSecond / baseline.samplesPerSecond;
    throughputRows.push([
      label(result.config),
      workers === 0 ? String(batchSize) : shardSizes(batchSize, workers),
      formatNumber(samplesPerSecond, 0),
      workers === 0 ? '1.00×' : `${speedUp.toFixed(2)}×`,
      workers === 0 ? '—' : `${((100 * speedUp) / workers).toFixed(0)}%`,
      median(stepMs).toFixed(1),
      quantile(stepMs, 0.9).toFixed(1),
      String(measured.length),
      result.load.toFixed(2),
      ...(roundCount > 1
        ? [result.roundSamplesPerSecond.map((value) => formatNumber(value, 0)).join(' ')]
        : []),
    ]);
    if (workers > 0 && !apart) {
      splitRows.push([
        label(result.config),
        median(measured.map((step) => step.computeMs)).toFixed(1),
        median(measured.map((step) => step.transferMs)).toFixed(1),
        median(measured.map((step) => step.waitMs)).toFixed(1),
        median(measured.map((step) => step.prepMs)).toFixed(1),
        median(measured.map((step) => step.updateMs)).toFixed(1),
        median(stepMs).toFixed(1),
        median(measured.map((step) => step.gapMs)).toFixed(1),
        result.coordinatorCpuMsPerStep.toFixed(1),
      ]);
      const outside = measured.map((step) => step.gapMs);
      const largest = outside.indexOf(Math.max(...outside));
      notes.push(
        `${label(result.config)}: ${formatNumber(sum(outside), 0)} ms of wall time between the measured steps ` +
          `is outside stepMs and not counted (largest ${outside[largest].toFixed(0)} ms, before step ` +
          `${warmup + (largest % steps) + 1}: the coordinator checkpoints every 100 steps)`,
      );
    }
    if (result.summary !== undefined) {
      notes.push(
        `${label(result.config)}: test accuracy ${(100 * result.summary.testAccuracy).toFixed(2)}% after ` +
          `${result.summary.steps} steps; run summary ${formatNumber(result.summary.samplesPerSecond, 0)} ` +
          `samples/s over all steps incl. warm-up; ${result.summary.redoneShards} redone shards, ` +
          `${result.summary.evictions} evictions; ${result.summary.seconds.toFixed(1)} s wall incl. start-up, ` +
          'evaluation and saving',
      );
    }
  }

  const lines = [
    `Distributed training throughput, model "${training.model.name}", global batch ${batchSize}, ` +
      `${microBatchSize === undefined ? '' : `micro-batches of ${microBatchSize}, `}backend ${BACKEND}`,
    '',
    ...machine,
    loadLine('end'),
    '',
    ...formatTable(throughputRows, new Set([1, 2, 3, 4, 5, 6, 7, 8])),
    '',
    `samples/s = measured samples ÷ summed step time (${steps} steps after ${warmup} warm-up steps` +
      `${roundCount > 1 ? `; the median of ${roundCount} rounds, whose steps the other columns pool` : ''}); ` +
      'speed-up = ÷ single-process samples/s;',
    'efficiency = speed-up ÷ workers. Single process: time between onStep calls of trainLocal; workers: ' +
      'StepReport.stepMs.',
    `load = 1-minute load average when the configuration finished (${os.cpus().length} cores).`,
  ];
  if (splitRows.length > 1) {
    lines.push(
      '',
      'Where a distributed step goes (medians over the measured steps):',
      '',
      ...formatTable(splitRows, new Set([1, 2, 3, 4, 5, 6, 7, 8])),
      '',
      'compute  = max over workers of computeMs (decoding the shard, loading weights, forward/backward, ' +
        'reading the gradient)',
      'transfer = max over workers of transferMs (send → result received, minus compute: encoding, ' +
        'loopback, decoding,',
      '           both ways, and time the coordinator was busy before it could read the reply)',
      'wait     = max over workers of waitMs (result received → all results summed: stragglers and ' +
        'the final sum)',
      'prep     = step ms − update − max over workers of (compute + transfer + wait): cutting the batch ' +
        'before the first send',
      'update   = updateMs (mean gradient and optimizer on the coordinator); step = stepMs',
      'gap      = wall time between steps not in stepMs (metrics log, step report, checkpoints)',
      'coordinator CPU = CPU time of the coordinator process per measured step (user + system, all threads)',
    );
  }
  if (notes.length > 0) lines.push('', ...notes);
  lines.push('', ...pytorchComparison(pytorch, results, rounds));
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * One configuration's rounds as one result: the first failure if any round failed, else every round's
 * measured steps pooled, samples/s the median of the rounds' (each its measured samples ÷ step time).
 */
function combineRounds(roundResults) {
  const failed = roundResults.find((result) => !result.ok);
  if (failed !== undefined) return failed;
  const roundSamplesPerSecond = roundResults.map((result) => {
    const measured = result.steps.slice(warmup);
    const samples = measured.reduce((total, step) => total + step.samples, 0);
    return samples / (sum(measured.map((step) => step.stepMs)) / 1000);
  });
  const last = roundResults[roundResults.length - 1];
  return {
    ...last,
    measured: roundResults.flatMap((result) => result.steps.slice(warmup)),
    roundSamplesPerSecond,
    samplesPerSecond: median(roundSamplesPerSecond),
    load: Math.max(...roundResults.map((result) => result.load)),
    coordinatorCpuMsPerStep: median(roundResults.map((result) => result.coordinatorCpuMsPerStep)),
  };
}

/** The PyTorch case a configuration is compared with: one process, or DDP with a process per worker. */
function pytorchCase(config) {
  const processes = config === 'local' ? 1 : workerCount(config);
  if (batchSize % processes !== 0) return undefined;
  return {
    processes,
    label: processes === 1 ? '1 process' : `DDP gloo, ${processes} × ${batchSize / processes}`,
  };
}

/**
 * After a round of configurations: PyTorch training the same model at the same global batch, Adam, as
 * many steps, once per case the round's configurations need; by process count. Undefined without torch.
 */
async function measurePytorchCases(pytorch, roundResults) {
  if (!pytorch.available) return undefined;
  const measured = new Map();
  for (const result of roundResults.filter((r) => r.ok)) {
    const wanted = pytorchCase(result.config);
    if (wanted === undefined || measured.has(wanted.processes)) continue;
    process.stderr.write(`[pytorch] ${wanted.label}\n`);
    measured.set(
      wanted.processes,
      await measurePytorch(pytorch.python, {
        dataDir: embeddedMnistDir(),
        mode: wanted.processes === 1 ? 'train' : 'ddp',
        batchSize,
        processes: wanted.processes,
        steps,
        warmup,
      }),
    );
  }
  return measured;
}

/**
 * Each configuration against its PyTorch case (the median of the rounds on both sides), and with more
 * than one round, the ratio in each round: the fairest figure on a machine whose speed drifts.
 */
function pytorchComparison(pytorch, results, rounds) {
  if (!pytorch.available) return [skipLine(pytorch)];
  const rows = [];
  const perRound = [];
  for (const result of results) {
    const wanted = pytorchCase(result.config);
    if (!result.ok || wanted === undefined) continue;
    const cases = rounds.map((round) => round.pytorch.get(wanted.processes));
    const setups = cases[0].map(({ setup }, setupIndex) => {
      const outcomes = cases.map((measured) => measured[setupIndex].result);
      const measuredOnes = outcomes.filter((value) => typeof value === 'object');
      if (measuredOnes.length < outcomes.length) {
        return { setup, result: outcomes.find((value) => typeof value !== 'object') };
      }
      const samplesPerSecond = median(measuredOnes.map((value) => value.samplesPerSecond));
      if (roundCount > 1) {
        const ratios = result.roundSamplesPerSecond.map((ours, r) => ours / measuredOnes[r].samplesPerSecond);
        perRound.push(
          `${label(result.config)} ÷ ${wanted.label} (${setup}), per round: ` +
            `${ratios.map((ratio) => `${ratio.toFixed(2)}×`).join(' ')} (median ${median(ratios).toFixed(2)}×)`,
        );
      }
      return { setup, result: { ...measuredOnes[0], samplesPerSecond } };
    });
    rows.push({
      label: label(result.config),
      pytorchLabel: wanted.label,
      callosum: result.samplesPerSecond,
      pytorch: setups,
    });
  }
  return [
    `Against PyTorch on the same CPU (Adam, global batch ${batchSize}, ${warmup} warm-up + ${steps} timed steps` +
      `${roundCount > 1 ? `, medians of ${roundCount} rounds` : ''}; no augmentation, no micro-batches)`,
    '',
    ...comparisonLines(rows, pytorch.torch),
    ...(perRound.length > 0 ? ['', ...perRound] : []),
  ];
}

/** Forks this script as `--child <config>` and resolves with the one result message it sends. */
function runChildProcess(config) {
  return forkForResult(import.meta.url, childArgs(config, batchSize), {
    // The child's stdout goes to our stderr, so stdout carries only the tables.
    stdio: ['ignore', 2, 2, 'ipc'],
    failed: (reason) => ({ config, ok: false, reason }),
  });
}

/** This script's arguments for a child measuring `config` at global batch `batch`. */
function childArgs(config, batch) {
  return [
    '--child',
    config,
    '--steps',
    String(steps),
    '--warmup',
    String(warmup),
    '--batch-size',
    String(batch),
    ...(microBatchSize === undefined ? [] : ['--micro-batch-size', String(microBatchSize)]),
  ];
}

function label(config) {
  if (config === 'local') return 'single process';
  const { count, views, threads, topology, sockets, apart } = parseWorkerConfig(config);
  if (apart) return `${count} processes apart (no exchange)`;
  const workers = `${count} worker${count === '1' ? '' : 's'}`;
  const perWorker = threads === undefined ? '' : ` × ${threads} thread${threads === '1' ? '' : 's'}`;
  const notes = [topology, views, sockets ? 'sockets' : undefined].filter((note) => note !== undefined);
  return `${workers}${perWorker}${notes.length === 0 ? '' : ` (${notes.join(', ')})`}`;
}

function workerCount(config) {
  return Number(parseWorkerConfig(config).count);
}

// ---------------------------------------------------------------------------------------------------------
// Child: one configuration.

async function runChild(config) {
  // As the `callosum` command does, in every configuration (the single-process baseline too).
  tuneHeapForTraining();
  const name = label(config);
  const progress = stepProgress(name);
  try {
    const result =
      config === 'local'
        ? await runLocal(progress)
        : parseWorkerConfig(config).apart
          ? await runApart(config)
          : await runWorkers(config, progress);
    await sendToParent({ config, ok: true, load: os.loadavg()[0], ...result });
  } catch (error) {
    const reason = errorReason(error);
    process.stderr.write(`[${name}] failed: ${reason}\n`);
    await sendToParent({ config, ok: false, reason });
  }
}

/** trainLocal in this process: a step is the time from one onStep call to the next. */
async function runLocal(progress) {
  const steps = [];
  let previous;
  const started = performance.now();
  await trainLocal({
    ...training,
    backend: BACKEND,
    evaluate: false,
    async onStep(event) {
      const now = performance.now();
      // The first step also includes loading the data and building the model; it is warm-up anyway.
      const stepMs = now - (previous ?? started);
      previous = now;
      steps.push({ stepMs, samples: batchSize });
      progress(event.step, event.totalSteps, (batchSize * 1000) / stepMs);
      if (values.barrier && event.step === warmup) {
        await sendToParent({ warmedUp: true });
        await new Promise((resolve) => process.once('message', resolve));
        previous = performance.now();
      }
    },
  });
  return { steps };
}

/**
 * The ceiling of a synchronous step that costs nothing to exchange: `count` single-process runs at
 * once (each a child of its own, as `--child local` at the batch ÷ count), each step the slower of
 * theirs. What a step of the distributed configurations spends beyond it is the price of exchanging.
 */
async function runApart(config) {
  const count = workerCount(config);
  if (batchSize % count !== 0)
    throw new Error(`${config}: the batch of ${batchSize} does not split ${count} ways`);
  const children = Array.from({ length: count }, () => forkWarmedUpRun(batchSize / count));
  // The measured steps start together, after every run's warm-up (start-up times differ by far more).
  await Promise.all(children.map((child) => child.warmedUp));
  for (const child of children) child.go();
  const runs = await Promise.all(children.map((child) => child.ended));
  const failed = runs.find((run) => !run.ok);
  if (failed !== undefined) throw new Error(failed.reason);
  const steps = runs[0].steps.map((_, index) => ({
    stepMs: Math.max(...runs.map((run) => run.steps[index].stepMs)),
    samples: batchSize,
  }));
  return { steps };
}

/**
 * A `--child local` run at global batch `batch` that, once warmed up, waits for `go`. `warmedUp` also
 * resolves when the child ends first (it failed); `ended` resolves with its result.
 */
function forkWarmedUpRun(batch) {
  let warm;
  const warmedUp = new Promise((resolve) => {
    warm = resolve;
  });
  let child;
  const ended = forkForResult(import.meta.url, [...childArgs('local', batch), '--barrier'], {
    stdio: ['ignore', 2, 2, 'ipc'],
    failed: (reason) => ({ ok: false, reason }),
    onMessage: (message, forked) => {
      child = forked;
      if (message?.warmedUp !== true) return false;
      warm();
      return true;
    },
  }).finally(() => warm());
  return { warmedUp, go: () => child?.connected && child.send('go'), ended };
}

/** trainWithLocalWorkers: the coordinator here, `workers` worker processes; StepReports give the times. */
async function runWorkers(config, progress) {
  const workers = workerCount(config);
  const { views, threads, topology, sockets } = parseWorkerConfig(config);
  const outDir = await mkdtemp(path.join(os.tmpdir(), 'callosum-bench-'));
  const steps = [];
  let previous;
  let watcher;
  let cpuAtWarmupEnd;
  let cpuOverMeasured;
  try {
    const summary = await trainWithLocalWorkers({
      workers,
      ...(threads === undefined ? {} : { threads: Number(threads) }),
      ...(topology === undefined ? {} : { topology }),
      backend: BACKEND,
      training,
      outDir,
      liveViews: views !== 'no-views',
      sharedMemory: !sockets,
      log: (line) => {
        process.stderr.write(`[${label(config)}] ${line}\n`);
        // The address the coordinator prints carries the run's token.
        const dashboard = /dashboard at (\S+)/.exec(line)?.[1];
        if (views === 'watched' && dashboard !== undefined) watcher = watchRun(dashboard);
      },
      onStep(report) {
        const now = performance.now();
        const max = (pick) => Math.max(...report.perWorker.map(pick));
        const critical = max((w) => w.computeMs + w.transferMs + w.waitMs);
        steps.push({
          stepMs: report.stepMs,
          samples: report.perWorker.reduce((total, w) => total + w.samples, 0),
          computeMs: max((w) => w.computeMs),
          transferMs: max((w) => w.transferMs),
          waitMs: max((w) => w.waitMs),
          updateMs: report.updateMs,
          prepMs: Math.max(0, report.stepMs - report.updateMs - critical),
          // Time since the previous report that the step itself did not measure.
          gapMs: previous === undefined ? 0 : Math.max(0, now - previous - report.stepMs),
          workers: report.workers,
        });
        previous = now;
        if (report.step === warmup) cpuAtWarmupEnd = process.cpuUsage();
        if (report.step === report.totalSteps) cpuOverMeasured = process.cpuUsage(cpuAtWarmupEnd);
        progress(report.step, report.totalSteps, report.samplesPerSecond);
      },
    });
    const coordinatorCpuMsPerStep =
      (cpuOverMeasured.user + cpuOverMeasured.system) / 1000 / steps.slice(warmup).length;
    const short = steps.filter((step) => step.workers !== workers).length;
    if (short > 0) {
      process.stderr.write(
        `[${label(config)}] warning: ${short} steps ran on fewer than ${workers} workers\n`,
      );
    }
    return { steps, summary, coordinatorCpuMsPerStep };
  } finally {
    watcher?.stop();
    await rm(outDir, { recursive: true, force: true });
  }
}

/**
 * A dashboard page and a Prometheus server watching a run, in a process of their own as they would be:
 * the page's event stream read for the whole run, and /metrics scraped every second (Prometheus's
 * default is every 15 s).
 */
function watchRun(dashboardUrl) {
  // `process.argv[1]` is the dashboard's address, with the run's token.
  const script = `
const at = (pathname) => Object.assign(new URL(process.argv[1]), { pathname }).href;
fetch(at('/events')).then(async (response) => { for await (const _chunk of response.body); }).catch(() => {});
setInterval(() => fetch(at('/metrics')).then((response) => response.text()).catch(() => {}), 1_000);
`;
  const watcher = spawn(process.execPath, ['--input-type=module', '-e', script, dashboardUrl], {
    stdio: 'ignore',
  });
  return { stop: () => watcher.kill() };
}
