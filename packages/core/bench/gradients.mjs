/**
 * Gradient-computation benchmark for @callosum/core (a benchmark, not a test: it asserts nothing).
 *
 * Measures `computeGradients` for the `cnn` model on real MNIST batches, at several batch sizes, on each
 * backend that loads here, and prints median ms/step and samples/s as a table on stdout (progress goes
 * to stderr). Run it from the repository root with `pnpm bench:core`, which builds core first: this file
 * is plain ESM JavaScript that imports the built `../dist/index.js`, so it needs no TypeScript runner.
 *
 * Each backend runs in its own child process (this script forked with `--child <backend>`), because
 * model variables live on the backend they were created on and a backend cannot be unloaded.
 *
 * Options (e.g. `pnpm bench:core --backends wasm --seconds 5`):
 *   --backends tensorflow,wasm,cpu   backends to try, in order (default: all three)
 *   --batches 32,64,128              batch sizes (default: 32,64,128)
 *   --seconds 3                      minimum timed seconds per case (default: 3)
 *   --model cnn                      model name from the registry (default: cnn)
 */
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  buildModel,
  computeGradients,
  gatherBatch,
  initBackend,
  loadMnist,
  parameterLayout,
} from '../dist/index.js';

const ALL_BACKENDS = ['tensorflow', 'wasm', 'cpu'];

/**
 * Per-backend iteration policy. The pure-JS cpu backend manages ~35 samples/s, so one step at batch 128
 * takes seconds: fewer warm-up and minimum iterations there keep the run short without losing the median.
 */
const POLICY = {
  tensorflow: { warmup: 5, minIterations: 10 },
  wasm: { warmup: 5, minIterations: 10 },
  cpu: { warmup: 1, minIterations: 3 },
};

/** Distinct consecutive-index batches cycled through per case, so the timed steps see varied real data. */
const BATCH_POOL = 8;

const { values } = parseArgs({
  // pnpm forwards a `--` separator to the script; it separates nothing here.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    child: { type: 'string' },
    backends: { type: 'string', default: ALL_BACKENDS.join(',') },
    batches: { type: 'string', default: '32,64,128' },
    seconds: { type: 'string', default: '3' },
    model: { type: 'string', default: 'cnn' },
  },
  strict: true,
});

const batchSizes = values.batches.split(',').map((size) => {
  const parsed = Number(size);
  if (!Number.isInteger(parsed) || parsed <= 0)
    throw new Error(`--batches: "${size}" is not a positive integer`);
  return parsed;
});
const minSeconds = Number(values.seconds);
if (!(minSeconds > 0)) throw new Error(`--seconds: "${values.seconds}" is not a positive number`);

if (values.child === undefined) {
  await runParent();
} else {
  await runChild(values.child);
}

// ---------------------------------------------------------------------------------------------------------
// Parent: one child per backend, then the table.

async function runParent() {
  const backends = values.backends.split(',').filter((name) => name !== '');
  const cpus = os.cpus();
  const machine = [
    `CPU:     ${cpus[0]?.model ?? 'unknown'} × ${cpus.length} cores`,
    `RAM:     ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `Node:    ${process.version} (${process.platform}-${process.arch})`,
    `tfjs:    @tensorflow/tfjs-core ${tf.version_core}`,
    `Model:   ${values.model}, batches ${batchSizes.join('/')}, ≥ ${minSeconds} s timed per case`,
    `Load:    ${formatLoad()} (1/5/15 min) at start`,
  ];
  process.stderr.write(`${machine.join('\n')}\n`);

  const results = [];
  for (const backend of backends) {
    process.stderr.write(`[${backend}] starting child process\n`);
    results.push(await runChildProcess(backend));
  }

  const rows = [
    ['backend', 'package', 'batch', 'median ms/step', 'samples/s', 'min–max ms', 'steps', 'load'],
  ];
  const notes = [];
  for (const result of results) {
    if (!result.available) {
      rows.push([result.backend, 'not available (see below)', '—', '—', '—', '—', '—', '—']);
      notes.push(`${result.backend}: not available: ${result.reason}`);
      continue;
    }
    if (result.details !== undefined) notes.push(`${result.backend}: ${result.details}`);
    for (const c of result.cases) {
      rows.push([
        result.backend,
        result.packageName,
        String(c.batch),
        c.medianMs.toFixed(1),
        c.samplesPerSecond.toFixed(0),
        `${c.minMs.toFixed(1)}–${c.maxMs.toFixed(1)}`,
        String(c.steps),
        c.load.toFixed(2),
      ]);
    }
  }

  const lines = [
    `Gradient computation (computeGradients), model "${values.model}"`,
    '',
    ...machine,
    `Load:    ${formatLoad()} (1/5/15 min) at end`,
    '',
    ...formatTable(rows),
    '',
    `load = 1-minute load average when the case finished; the benchmark itself adds up to ~1, so on ${os.cpus().length} ` +
      'cores a value well above 1 means other processes competed.',
  ];
  if (notes.length > 0) lines.push('', ...notes);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Forks this script as `--child <backend>` and resolves with the one result message it sends. */
function runChildProcess(backend) {
  return new Promise((resolve, reject) => {
    const child = fork(
      fileURLToPath(import.meta.url),
      [
        '--child',
        backend,
        '--batches',
        batchSizes.join(','),
        '--seconds',
        String(minSeconds),
        '--model',
        values.model,
      ],
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    let result;
    child.on('message', (message) => {
      result = message;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (result !== undefined) resolve(result);
      else {
        const how = signal === null ? `exit code ${code}` : `signal ${signal}`;
        resolve({ backend, available: false, reason: `benchmark child process failed (${how})` });
      }
    });
  });
}

function formatTable(rows) {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const numeric = new Set([2, 3, 4, 6, 7]);
  const format = (row) =>
    row
      .map((cell, column) =>
        numeric.has(column) ? cell.padStart(widths[column]) : cell.padEnd(widths[column]),
      )
      .join('  ')
      .trimEnd();
  return [format(rows[0]), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.slice(1).map(format)];
}

function formatLoad() {
  return os
    .loadavg()
    .map((load) => load.toFixed(2))
    .join(' ');
}

// ---------------------------------------------------------------------------------------------------------
// Child: one backend, every batch size.

async function runChild(backend) {
  const send = (message) => new Promise((resolve) => process.send(message, () => resolve()));
  let choice;
  try {
    choice = await initBackend(backend);
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    process.stderr.write(`[${backend}] not available: ${reason}\n`);
    await send({ backend, available: false, reason });
    return;
  }

  const packageName = `${choice.packageName}@${packageVersion(choice.packageName)}`;
  const details = await backendDetails(backend);
  process.stderr.write(`[${backend}] ${choice.reason}${details === undefined ? '' : `; ${details}`}\n`);

  const mnist = await loadMnist();
  const model = buildModel({ name: values.model }, { seed: 0 });
  const layout = parameterLayout(model);
  const policy = POLICY[backend] ?? POLICY.wasm;

  const cases = [];
  for (const batch of batchSizes) {
    const pool = Array.from({ length: BATCH_POOL }, (_, index) => {
      const start = (index * batch) % (mnist.train.count - batch);
      return gatherBatch(
        mnist.train,
        Array.from({ length: batch }, (_, offset) => start + offset),
      );
    });
    for (let step = 0; step < policy.warmup; step++) computeGradients(model, pool[step % BATCH_POOL], layout);

    const times = [];
    let elapsed = 0;
    while (elapsed < minSeconds * 1000 || times.length < policy.minIterations) {
      const input = pool[times.length % BATCH_POOL];
      const started = performance.now();
      computeGradients(model, input, layout);
      const took = performance.now() - started;
      times.push(took);
      elapsed += took;
    }
    times.sort((a, b) => a - b);
    const medianMs = median(times);
    const result = {
      batch,
      steps: times.length,
      medianMs,
      minMs: times[0],
      maxMs: times[times.length - 1],
      samplesPerSecond: (batch * 1000) / medianMs,
      load: os.loadavg()[0],
    };
    cases.push(result);
    process.stderr.write(
      `[${backend}] batch ${String(batch).padStart(3)}: ${medianMs.toFixed(1)} ms/step median of ` +
        `${times.length} steps, ${result.samplesPerSecond.toFixed(0)} samples/s (load ${formatLoad()})\n`,
    );
  }
  if (tf.memory().numTensors > model.weights.length + 16) {
    process.stderr.write(`[${backend}] warning: ${tf.memory().numTensors} tensors alive after the run\n`);
  }
  await send({ backend, available: true, packageName, details, cases });
}

function median(sorted) {
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The installed version of a backend package, resolved from core (where initBackend resolved it). */
function packageVersion(packageName) {
  for (const base of [import.meta.url, `${process.cwd()}/package.json`]) {
    try {
      return createRequire(base)(`${packageName}/package.json`).version;
    } catch {
      // Not resolvable from here (or the package hides package.json); try the next base.
    }
  }
  return '?';
}

/** What the backend says about its own parallelism, where it says anything. */
async function backendDetails(backend) {
  if (backend !== 'wasm') return undefined;
  const { getThreadsCount } = await import('@tensorflow/tfjs-backend-wasm');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  return `SIMD ${simd ? 'on' : 'off'}, multithreading ${threads ? 'on' : 'off'}, ${getThreadsCount()} thread(s)`;
}
