/**
 * Where one single-process training step goes (a benchmark, not a test: it asserts nothing).
 *
 * Runs the steps `trainLocal` runs (the default config: `cnn`, Adam, batch 128, shift augmentation) on
 * the wasm backend, phase by phase with a clock around each: gathering and augmenting the batch, the
 * bytes made float pixels, the gradient (input tensors, forward and backward, reading it back), the
 * check and mean, the optimizer, writing the weights back into the model. Then `tf.profile` over more
 * steps gives the time of every tfjs kernel inside the gradient. Last, the model's arithmetic: FLOP per
 * sample of the forward and backward pass, the arithmetic limit of WebAssembly SIMD128 on this CPU (a
 * loop of independent f32x4 multiplies and adds, as a matrix product does them: wasm has no fused
 * multiply-add) and the rate the wasm backend's own matrix product reaches at the model's shapes (XNNPACK,
 * one thread), so the step can be stated as a fraction of each.
 *
 * The phases are the exported pieces trainLocal is made of (train-local.ts); to show they are the same
 * steps, the weights after them are compared bit for bit with trainLocal's after as many steps.
 *
 * Run it from the repository root with `pnpm bench:profile` (builds core first). Options:
 *   --steps 40     timed steps (default 40), after --warmup 5 untimed ones
 *   --profiled 10  steps under tf.profile for the per-kernel table (default 10)
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  formatTable,
  machineLines,
  median,
  nonNegativeInteger,
  positiveInteger,
  scriptArgs,
} from '../../../tools/bench-support.mjs';
import {
  assertFiniteShard,
  batchBuffers,
  computeGradients,
  DEFAULT_TRAINING_CONFIG,
  imageSamples,
  initBackend,
  instantiateTask,
  loadMnist,
  mnistTask,
  OrderedGradientSum,
  readFlatWeights,
  TrainingState,
  toSampleBatch,
  trainLocal,
  writeFlatWeights,
} from '../dist/index.js';
import { instantiateKernels, webAssembly } from '../dist/wasm/kernels.js';

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    steps: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '5' },
    profiled: { type: 'string', default: '10' },
  },
  strict: true,
});
const steps = positiveInteger('--steps', values.steps);
const warmup = nonNegativeInteger('--warmup', values.warmup);
const profiled = positiveInteger('--profiled', values.profiled);

/** Matrix products timed for the SIMD128 rate: [m, k] × [k, n]. */
const MATMUL_SHAPES = [
  [128, 5408, 128],
  [64, 5408, 128],
];
const MATMUL_REPEATS = 10;
/** The peak loop: this many independent f32x4 accumulators (enough to hide the add and multiply latency). */
const PEAK_ACCUMULATORS = 12;
const PEAK_ITERATIONS = 20_000_000;

const backend = await initBackend('wasm');
const config = { ...DEFAULT_TRAINING_CONFIG, maxSteps: warmup + steps + profiled };
const mnist = await loadMnist();
const machine = machineLines([
  `tfjs:    @tensorflow/tfjs-core ${tf.version_core}, ${backend.packageName} (SIMD ` +
    `${(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) ? 'on' : 'off'}, 1 thread)`,
  `Run:     ${config.model.name}, batch ${config.batchSize}, ${config.optimizer.name}, max shift ` +
    `${config.maxShift}; ${warmup} warm-up + ${steps} timed steps, ${profiled} under tf.profile`,
]);
process.stderr.write(`${machine.join('\n')}\n`);

// ---------------------------------------------------------------------------------------------------------
// The steps, phase by phase.

const PHASES = [
  'gather + augment',
  'bytes → float',
  'gradient',
  'check + mean',
  'optimizer',
  'write weights',
];
// The built-in task trainLocal trains without one: the config's model on MNIST.
const taskModel = instantiateTask(mnistTask(config.model, { dataset: mnist }), config.seed);
const { model, layout, conversion } = taskModel;
const train = imageSamples(mnist.train);
const state = new TrainingState(config, readFlatWeights(model, layout), train.count, layout);
const sum = new OrderedGradientSum(layout.totalSize);
const gradient = new Float32Array(layout.totalSize);
const buffers = batchBuffers(train, config.batchSize, conversion);

/** One trainLocal step; with `times`, adds each phase's milliseconds to it. */
function step(times) {
  const clock = [performance.now()];
  const samples = state.gatherTrainingSamples(train, state.batchIndices());
  clock.push(performance.now());
  const batch = toSampleBatch(samples, conversion, buffers);
  clock.push(performance.now());
  const result = computeGradients(taskModel, batch, gradient);
  clock.push(performance.now());
  assertFiniteShard(result, 0, layout.totalSize);
  sum.begin(1);
  sum.add(0, result);
  const reduced = sum.reduce();
  clock.push(performance.now());
  state.applyStep(reduced);
  clock.push(performance.now());
  writeFlatWeights(model, state.weights, layout);
  clock.push(performance.now());
  if (times === undefined) return;
  PHASES.forEach((phase, i) => {
    times[phase].push(clock[i + 1] - clock[i]);
  });
}

const times = Object.fromEntries(PHASES.map((phase) => [phase, []]));
for (let i = 0; i < warmup; i++) step();
for (let i = 0; i < steps; i++) {
  step(times);
  if ((i + 1) % 10 === 0) process.stderr.write(`[profile] ${i + 1}/${steps} timed steps\n`);
}
const stepTimes = times[PHASES[0]].map((_, i) => PHASES.reduce((total, phase) => total + times[phase][i], 0));
const stepMs = median(stepTimes);
const mean = (numbers) => numbers.reduce((total, value) => total + value, 0) / numbers.length;
const stepMeanMs = mean(stepTimes);

// ---------------------------------------------------------------------------------------------------------
// Kernels inside the gradient.

process.stderr.write(`[profile] ${profiled} steps under tf.profile\n`);
const kernelMs = new Map();
let gradientUnderProfileMs = 0;
for (let i = 0; i < profiled; i++) {
  const started = performance.now();
  const info = await tf.profile(() => step());
  gradientUnderProfileMs += performance.now() - started;
  for (const kernel of info.kernels) {
    kernelMs.set(kernel.name, (kernelMs.get(kernel.name) ?? 0) + kernel.kernelTimeMs);
  }
}
const kernelRows = [...kernelMs].map(([name, total]) => [name, total / profiled]).sort((a, b) => b[1] - a[1]);
const kernelTotal = kernelRows.reduce((total, [, ms]) => total + ms, 0);

// ---------------------------------------------------------------------------------------------------------
// The mirror check: the same steps through trainLocal give the same weights.

process.stderr.write(`[profile] trainLocal for ${config.maxSteps} steps, to compare the weights\n`);
const reference = await trainLocal({ ...config, backend: 'wasm', evaluate: false, dataset: mnist });
const differing = new Uint32Array(reference.weights.buffer).filter(
  (bits, i) => bits !== new Uint32Array(state.weights.buffer)[i],
).length;

// ---------------------------------------------------------------------------------------------------------
// Arithmetic: FLOP per sample, and the wasm backend's matrix product rate.

/** Multiply-adds count 2 FLOP; activations, pooling, bias and the loss are left out (no multiply-adds). */
function flopPerSample(layers) {
  const forward = layers.flatMap((layer) => {
    const kernel = layer.getWeights()[0];
    if (kernel === undefined) return [];
    if (layer.getClassName() === 'Dense') return [2 * kernel.size];
    if (layer.getClassName() === 'Conv2D') {
      const [, height, width] = layer.outputShape;
      return [2 * height * width * kernel.size];
    }
    throw new Error(`flopPerSample: no FLOP count for layer ${layer.getClassName()}`);
  });
  const total = forward.reduce((a, b) => a + b, 0);
  // Backward: every weighted layer's weight gradient, and the input gradient of all but the first.
  return { forward: total, backward: 2 * total - (forward[0] ?? 0) };
}

function matMulGflops([m, k, n]) {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal([k, n]);
  const rates = [];
  for (let i = 0; i < MATMUL_REPEATS + 1; i++) {
    const started = performance.now();
    tf.tidy(() => tf.matMul(a, b).dataSync());
    const seconds = (performance.now() - started) / 1000;
    if (i > 0) rates.push((2 * m * k * n) / seconds / 1e9);
  }
  tf.dispose([a, b]);
  return median(rates);
}

/**
 * GFLOP/s of a wasm loop that only multiplies and adds f32x4 vectors: acc = acc × c + c on
 * PEAK_ACCUMULATORS independent accumulators (`simdPeak` in assembly/kernels.ts has 12; 8 FLOP per
 * accumulator per iteration). The best of 5 runs.
 */
function simd128PeakGflops() {
  // `simdPeak` in assembly/kernels.ts; it touches no memory, but the module imports one.
  const run = instantiateKernels(new webAssembly.Memory({ initial: 0 })).simdPeak;
  run(1000, 0.5);
  let best = 0;
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    run(PEAK_ITERATIONS, 0.5);
    const seconds = (performance.now() - started) / 1000;
    best = Math.max(best, (PEAK_ITERATIONS * PEAK_ACCUMULATORS * 8) / seconds / 1e9);
  }
  return best;
}

const flop = flopPerSample(model.layers);
const flopTotal = flop.forward + flop.backward;
const samplesPerSecond = (config.batchSize * 1000) / stepMs;
const gradientSamplesPerSecond = (config.batchSize * 1000) / median(times.gradient);
const rates = MATMUL_SHAPES.map((shape) => ({ shape, gflops: matMulGflops(shape) }));
const matMulBest = Math.max(...rates.map((rate) => rate.gflops));
const simdPeak = simd128PeakGflops();

// ---------------------------------------------------------------------------------------------------------
// Report.

const phaseRows = [['phase', 'median ms', 'mean ms', 'share of step']];
for (const phase of PHASES) {
  phaseRows.push([
    phase,
    median(times[phase]).toFixed(2),
    mean(times[phase]).toFixed(2),
    `${((100 * mean(times[phase])) / stepMeanMs).toFixed(1)}%`,
  ]);
}
phaseRows.push(['step', stepMs.toFixed(2), stepMeanMs.toFixed(2), '100%']);

const kernelTable = [['tfjs kernel', 'ms per step', 'share of kernels']];
for (const [name, ms] of kernelRows) {
  kernelTable.push([name, ms.toFixed(2), `${((100 * ms) / kernelTotal).toFixed(1)}%`]);
}
kernelTable.push(['all kernels', kernelTotal.toFixed(2), '100%']);

const percentOf = (flopPerSecond, gflops) => `${((100 * flopPerSecond) / 1e9 / gflops).toFixed(0)}%`;
const gflop = (value) => `${(value / 1e9).toFixed(2)} GFLOP/s`;
const lines = [
  'Where a trainLocal step goes (wasm backend)',
  '',
  ...machine,
  '',
  ...formatTable(phaseRows, new Set([1, 2, 3])),
  '',
  `samples/s = ${samplesPerSecond.toFixed(0)} (batch ÷ median step); the gradient phase alone ` +
    `${gradientSamplesPerSecond.toFixed(0)}; beyond the gradient: ` +
    `${(stepMeanMs - mean(times.gradient)).toFixed(2)} ms per step (${(
      (100 * (stepMeanMs - mean(times.gradient))) / stepMeanMs
    ).toFixed(1)}%)`,
  `Same steps as trainLocal: ${differing === 0 ? 'yes' : 'NO'}, ${differing} of ${layout.totalSize} weights ` +
    `differ after ${config.maxSteps} steps`,
  '',
  `Kernels over ${profiled} steps under tf.profile (a step took ${(gradientUnderProfileMs / profiled).toFixed(1)} ms ` +
    'there, the profiler included):',
  '',
  ...formatTable(kernelTable, new Set([1, 2])),
  '',
  `FLOP per sample (multiply-adds × 2): forward ${(flop.forward / 1e6).toFixed(3)} M, backward ` +
    `${(flop.backward / 1e6).toFixed(3)} M, in all ${(flopTotal / 1e6).toFixed(3)} M`,
  ...rates.map(
    ({ shape: [m, k, n], gflops }) =>
      `tf.matMul [${m}, ${k}] × [${k}, ${n}] on wasm: ${gflops.toFixed(2)} GFLOP/s`,
  ),
  `SIMD128 arithmetic limit (f32x4 multiply + add, ${PEAK_ACCUMULATORS} independent chains): ${simdPeak.toFixed(2)} GFLOP/s`,
  `The step computes ${gflop(flopTotal * samplesPerSecond)}, the gradient phase alone ` +
    `${gflop(flopTotal * gradientSamplesPerSecond)}: ${percentOf(flopTotal * samplesPerSecond, simdPeak)} ` +
    `(${percentOf(flopTotal * gradientSamplesPerSecond, simdPeak)}) of the SIMD128 limit, ` +
    `${percentOf(flopTotal * samplesPerSecond, matMulBest)} (${percentOf(flopTotal * gradientSamplesPerSecond, matMulBest)}) ` +
    'of the best matrix product rate',
];
process.stdout.write(`${lines.join('\n')}\n`);
