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
 * Where a Python with torch is found (tools/pytorch-baseline.mjs), the same run then measures PyTorch's
 * forward and backward pass of the same model at the same batch sizes, one process with one BLAS thread,
 * and prints the ratios; otherwise one line says why it was skipped.
 *
 * Options (e.g. `pnpm bench:core --backends wasm --seconds 5`):
 *   --backends tensorflow,wasm,cpu   backends to try, in order (default: all three)
 *   --batches 32,64,128              batch sizes (default: 32,64,128)
 *   --seconds 3                      minimum timed seconds per case (default: 3)
 *   --model cnn                      model name from the registry (default: cnn)
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  errorReason,
  forkForResult,
  formatLoad,
  formatTable,
  loadLine,
  machineLines,
  median,
  positiveInteger,
  scriptArgs,
  sendToParent,
} from '../../../tools/bench-support.mjs';
import { comparisonLines, findPytorch, measurePytorch, skipLine } from '../../../tools/pytorch-baseline.mjs';
import {
  computeGradients,
  embeddedMnistDir,
  gatherSamples,
  imageSamples,
  initBackend,
  instantiateTask,
  loadMnist,
  mnistTask,
  toSampleBatch,
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

/** PyTorch's untimed steps per batch size, and samples/s assumed to size its timed steps to --seconds. */
const PYTORCH_WARMUP = 5;
const PYTORCH_ASSUMED_RATE = 2000;

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    child: { type: 'string' },
    backends: { type: 'string', default: ALL_BACKENDS.join(',') },
    batches: { type: 'string', default: '32,64,128' },
    seconds: { type: 'string', default: '3' },
    model: { type: 'string', default: 'cnn' },
  },
  strict: true,
});

const batchSizes = values.batches.split(',').map((size) => positiveInteger('--batches', size));
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
  const machine = machineLines([
    `tfjs:    @tensorflow/tfjs-core ${tf.version_core}`,
    `Model:   ${values.model}, batches ${batchSizes.join('/')}, ≥ ${minSeconds} s timed per case`,
  ]);
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
    loadLine('end'),
    '',
    ...formatTable(rows, new Set([2, 3, 4, 6, 7])),
    '',
    `load = 1-minute load average when the case finished; the benchmark itself adds up to ~1, so on ${os.cpus().length} ` +
      'cores a value well above 1 means other processes competed.',
  ];
  if (notes.length > 0) lines.push('', ...notes);
  lines.push('', ...(await pytorchComparison(results)));
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** PyTorch's forward and backward pass at each measured batch size, against every backend measured. */
async function pytorchComparison(results) {
  const pytorch = findPytorch();
  if (!pytorch.available) return [skipLine(pytorch)];
  const measured = new Map();
  for (const batch of batchSizes) {
    process.stderr.write(`[pytorch] forward + backward, batch ${batch}\n`);
    const steps = Math.max(POLICY.wasm.minIterations, Math.ceil((minSeconds * PYTORCH_ASSUMED_RATE) / batch));
    measured.set(
      batch,
      await measurePytorch(pytorch.python, {
        dataDir: embeddedMnistDir(),
        mode: 'gradient',
        batchSize: batch,
        steps,
        warmup: PYTORCH_WARMUP,
      }),
    );
  }
  const rows = results
    .filter((result) => result.available)
    .flatMap((result) =>
      result.cases.map((c) => ({
        label: `${result.backend}, batch ${c.batch}`,
        pytorchLabel: `forward + backward, batch ${c.batch}`,
        callosum: c.samplesPerSecond,
        pytorch: measured.get(c.batch),
      })),
    );
  return [
    'Against PyTorch on the same CPU (computeGradients; PyTorch: one process, loss.backward(), no optimizer step)',
    '',
    ...comparisonLines(rows, pytorch.torch),
  ];
}

/** Forks this script as `--child <backend>` and resolves with the one result message it sends. */
function runChildProcess(backend) {
  return forkForResult(
    import.meta.url,
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
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      failed: (reason) => ({ backend, available: false, reason }),
    },
  );
}

// ---------------------------------------------------------------------------------------------------------
// Child: one backend, every batch size.

async function runChild(backend) {
  let choice;
  try {
    choice = await initBackend(backend);
  } catch (error) {
    const reason = errorReason(error);
    process.stderr.write(`[${backend}] not available: ${reason}\n`);
    await sendToParent({ backend, available: false, reason });
    return;
  }

  const packageName = `${choice.packageName}@${packageVersion(choice.packageName)}`;
  const details = await backendDetails(backend);
  process.stderr.write(`[${backend}] ${choice.reason}${details === undefined ? '' : `; ${details}`}\n`);

  const mnist = await loadMnist();
  // The built-in model as every run trains it: the MNIST task of the registered model, seed 0.
  const taskModel = instantiateTask(mnistTask({ name: values.model }), 0);
  const trainSamples = imageSamples(mnist.train);
  const policy = POLICY[backend] ?? POLICY.wasm;

  const cases = [];
  for (const batch of batchSizes) {
    const pool = Array.from({ length: BATCH_POOL }, (_, index) => {
      const start = (index * batch) % (mnist.train.count - batch);
      const indices = Array.from({ length: batch }, (_, offset) => start + offset);
      return toSampleBatch(gatherSamples(trainSamples, indices), taskModel.conversion);
    });
    for (let step = 0; step < policy.warmup; step++) computeGradients(taskModel, pool[step % BATCH_POOL]);

    const times = [];
    let elapsed = 0;
    while (elapsed < minSeconds * 1000 || times.length < policy.minIterations) {
      const input = pool[times.length % BATCH_POOL];
      const started = performance.now();
      computeGradients(taskModel, input);
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
  if (tf.memory().numTensors > taskModel.model.weights.length + 16) {
    process.stderr.write(`[${backend}] warning: ${tf.memory().numTensors} tensors alive after the run\n`);
  }
  await sendToParent({ backend, available: true, packageName, details, cases });
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
