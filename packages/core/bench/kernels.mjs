/**
 * The wasm backend's kernel sets against each other, in one process (a benchmark, not a test: it asserts
 * nothing): `previous`, wasm's own kernels under core's training kernels with neither heap nor native
 * kernels; `heap`, core's WebAssembly heap kernels (Conv2DBackpropFilter, MaxPoolGrad, Sum, bias Add, the
 * transposes of BatchMatMul); `native`, core's native kernels (BatchMatMul, _FusedMatMul, Conv2D,
 * FusedConv2D, Conv2DBackpropFilter) with the heap kernels for the rest, where they are built.
 *
 * Each kernel's previous path is still in the code, as the fallback where core's heap or native kernels
 * cannot run: building the kernels without them, on wasm's own kernels as registerWasmTrainingKernels
 * found them, gives exactly the previous kernel set.
 * Models train side by side from the same weights and batches (the default config: `cnn`, Adam,
 * batch 128, the steps of `trainLocal`), one on each kernel set, in interleaved rounds (the order
 * alternates), so that a busy machine slows both alike. Then each set runs a few steps under
 * `tf.profile` for the time per kernel. Last, whether the two models' weights differ, to the bit.
 *
 * Run from packages/core after building: `pnpm bench:kernels`. Options:
 *   --rounds 6    interleaved rounds (default 6) of --steps 20 timed steps per kernel set
 *   --profiled 5  steps per kernel set under tf.profile (default 5)
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  formatTable,
  machineLines,
  median,
  positiveInteger,
  scriptArgs,
} from '../../../tools/bench-support.mjs';
import { createBatchMatMulKernel } from '../dist/backends/wasm-kernels/batch-mat-mul.js';
import { createConv2DKernel } from '../dist/backends/wasm-kernels/conv2d.js';
import { createConv2DBackpropFilterKernel } from '../dist/backends/wasm-kernels/conv2d-backprop-filter.js';
import { createFusedMatMulKernel } from '../dist/backends/wasm-kernels/fused-mat-mul.js';
import { heapKernelsFor } from '../dist/backends/wasm-kernels/heap-kernels.js';
import { wasmKernelBeforeReplacement } from '../dist/backends/wasm-kernels/index.js';
import { createMaxPoolGradKernel } from '../dist/backends/wasm-kernels/max-pool-grad.js';
import { createSumKernel } from '../dist/backends/wasm-kernels/sum.js';
import {
  assertFiniteShard,
  batchBuffers,
  buildModel,
  computeGradients,
  DEFAULT_TRAINING_CONFIG,
  describeNativeKernels,
  imageSamples,
  initBackend,
  instantiateTask,
  loadMnist,
  mnistTask,
  nativeKernelsStatus,
  OrderedGradientSum,
  readFlatWeights,
  TrainingState,
  toSampleBatch,
  writeFlatWeights,
} from '../dist/index.js';

const { values } = parseArgs({
  args: scriptArgs(),
  options: {
    rounds: { type: 'string', default: '6' },
    steps: { type: 'string', default: '20' },
    profiled: { type: 'string', default: '5' },
  },
  strict: true,
});
const rounds = positiveInteger('--rounds', values.rounds);
const steps = positiveInteger('--steps', values.steps);
// The first round leaves its first three steps out as warm-up (below): it needs one more to time.
if (steps < 4) throw new Error(`--steps must be at least 4, got ${steps}`);
const profiled = positiveInteger('--profiled', values.profiled);

// BatchMatMul is in the sets for its transposes (transpose.ts), which it calls directly.
const REPLACED = [
  tf.Conv2DBackpropFilter,
  tf.MaxPoolGrad,
  tf.Sum,
  tf.Add,
  tf.Transpose,
  tf.BatchMatMul,
  tf._FusedMatMul,
  tf.Conv2D,
  tf.FusedConv2D,
];
await initBackend('wasm');
const wasmKernel = (name) => wasmKernelBeforeReplacement(name);
const none = () => undefined;
const registered = (name) => tf.getKernel(name, 'wasm');
/** The products and convolutions without core's native kernels, their transposes by `transpose`. */
const nonNative = (transpose) => [
  createBatchMatMulKernel(wasmKernel(tf.BatchMatMul), transpose, none),
  createFusedMatMulKernel(wasmKernel(tf._FusedMatMul), none),
  createConv2DKernel(wasmKernel(tf.Conv2D), none),
  createConv2DKernel(wasmKernel(tf.FusedConv2D), none),
];
const kernelSets = {
  previous: [
    createConv2DBackpropFilterKernel(wasmKernel(tf.BatchMatMul).kernelFunc, none, none),
    createMaxPoolGradKernel(wasmKernel(tf.MaxPoolGrad), none),
    createSumKernel(wasmKernel(tf.Sum), none),
    wasmKernel(tf.Add),
    wasmKernel(tf.Transpose),
    ...nonNative(wasmKernel(tf.Transpose).kernelFunc),
  ],
  heap: [
    createConv2DBackpropFilterKernel(wasmKernel(tf.BatchMatMul).kernelFunc, heapKernelsFor, none),
    ...[tf.MaxPoolGrad, tf.Sum, tf.Add, tf.Transpose].map(registered),
    ...nonNative(registered(tf.Transpose).kernelFunc),
  ],
  ...(nativeKernelsStatus().available ? { native: REPLACED.map(registered) } : {}),
};

function use(kernelSet) {
  for (const config of kernelSet) {
    tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
}

const config = { ...DEFAULT_TRAINING_CONFIG };
const mnist = await loadMnist();
const train = imageSamples(mnist.train);
const machine = machineLines([
  `Kernels: ${describeNativeKernels()}`,
  `Run:     ${config.model.name}, batch ${config.batchSize}, ${config.optimizer.name}; ${rounds} rounds × ` +
    `${steps} steps per kernel set, ${profiled} under tf.profile`,
]);
process.stderr.write(`${machine.join('\n')}\n`);

/** One model with its training state, stepping as trainLocal does. */
function trainer() {
  // The built-in task trainLocal trains without one: the config's model on MNIST.
  const taskModel = instantiateTask(mnistTask(config.model, { dataset: mnist }), config.seed);
  const { model, layout, conversion } = taskModel;
  const state = new TrainingState(config, readFlatWeights(model, layout), train.count, layout);
  const sum = new OrderedGradientSum(layout.totalSize);
  const gradient = new Float32Array(layout.totalSize);
  const buffers = batchBuffers(train, config.batchSize, conversion);
  return {
    state,
    step() {
      const samples = state.gatherTrainingSamples(train, state.batchIndices());
      const result = computeGradients(taskModel, toSampleBatch(samples, conversion, buffers), gradient);
      assertFiniteShard(result, 0, layout.totalSize);
      sum.begin(1);
      sum.add(0, result);
      state.applyStep(sum.reduce());
      writeFlatWeights(model, state.weights, layout);
    },
  };
}

const names = Object.keys(kernelSets);
const trainers = Object.fromEntries(names.map((name) => [name, trainer()]));
const samplesPerSecond = Object.fromEntries(names.map((name) => [name, []]));

for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? names : [...names].reverse();
  for (const name of order) {
    use(kernelSets[name]);
    const times = [];
    for (let i = 0; i < steps; i++) {
      const started = performance.now();
      trainers[name].step();
      times.push(performance.now() - started);
    }
    // The first round's first steps warm up (compilation, heap growth): its median leaves them behind.
    samplesPerSecond[name].push((config.batchSize * 1000) / median(round === 0 ? times.slice(3) : times));
  }
  process.stderr.write(`[kernels] round ${round + 1}/${rounds}\n`);
}

const kernelMs = Object.fromEntries(names.map((name) => [name, new Map()]));
for (const name of names) {
  use(kernelSets[name]);
  for (let i = 0; i < profiled; i++) {
    const info = await tf.profile(() => trainers[name].step());
    for (const kernel of info.kernels) {
      const totals = kernelMs[name];
      totals.set(kernel.name, (totals.get(kernel.name) ?? 0) + kernel.kernelTimeMs / profiled);
    }
  }
}
use(kernelSets[names.at(-1)]);

// The steps so far: rounds × steps + profiled, the same batches for every model.
const weightBits = names.map((name) => new Uint32Array(trainers[name].state.weights.buffer));
const differing = weightBits.map((bits) => bits.filter((value, i) => value !== weightBits[0][i]).length);
const stepsTaken = rounds * steps + profiled;

/** The filter gradient's multiply-adds × 2: batch × output pixels × filter taps × output channels. */
const conv = buildModel(config.model, { seed: config.seed }).layers.find(
  (layer) => layer.getClassName() === 'Conv2D',
);
const [, outHeight, outWidth] = conv.outputShape;
const filterGradientFlop = 2 * config.batchSize * outHeight * outWidth * conv.getWeights()[0].size;

/** Each later set against the one before it, per round: heap ÷ previous, native ÷ heap. */
const pairs = names.slice(1).map((name, i) => [name, names[i]]);
const ratios = pairs.map(([name, before]) =>
  samplesPerSecond[name].map((value, round) => value / samplesPerSecond[before][round]),
);
const roundRows = [
  [
    'round',
    ...names.map((name) => `${name} samples/s`),
    ...pairs.map(([name, before]) => `${name} ÷ ${before}`),
  ],
];
for (let round = 0; round < rounds; round++) {
  roundRows.push([
    String(round + 1),
    ...names.map((name) => samplesPerSecond[name][round].toFixed(0)),
    ...ratios.map((series) => `${series[round].toFixed(2)}×`),
  ]);
}
const kernelRows = [['tfjs kernel', ...names.map((name) => `${name} ms/step`)]];
// Transpose is left out: BatchMatMul calls it directly, so tf.profile counts it in BatchMatMul's time.
for (const kernel of [...REPLACED.filter((name) => name !== tf.Transpose), 'all kernels']) {
  const ms = names.map((name) =>
    kernel === 'all kernels'
      ? [...kernelMs[name].values()].reduce((total, value) => total + value, 0)
      : (kernelMs[name].get(kernel) ?? 0),
  );
  kernelRows.push([kernel, ...ms.map((value) => value.toFixed(2))]);
}
const filterGflops = names.map(
  (name) => `${name} ${(filterGradientFlop / kernelMs[name].get(tf.Conv2DBackpropFilter) / 1e6).toFixed(1)}`,
);

const columns = (from, count) => new Set(Array.from({ length: count }, (_, i) => from + i));
const lines = [
  `Kernel sets of the wasm backend: ${names.join(', ')} (trainLocal steps)`,
  '',
  ...machine,
  '',
  ...formatTable(roundRows, columns(1, names.length + pairs.length)),
  '',
  ...pairs.map(
    ([name, before], i) =>
      `${name} ÷ ${before}: ${Math.min(...ratios[i]).toFixed(2)}–${Math.max(...ratios[i]).toFixed(2)}× (median ` +
      `${median(ratios[i]).toFixed(2)}×)`,
  ),
  '',
  `Per kernel, ${profiled} steps each under tf.profile:`,
  '',
  ...formatTable(kernelRows, columns(1, names.length)),
  '',
  `Conv2DBackpropFilter (${(filterGradientFlop / 1e6).toFixed(1)} MFLOP per step): ${filterGflops.join(', ')} GFLOP/s`,
  `Weights after ${stepsTaken} steps from the same start and batches, differing from previous's: ` +
    names
      .slice(1)
      .map((name, i) => `${name} ${differing[i + 1]} of ${weightBits[0].length}`)
      .join(', '),
];
process.stdout.write(`${lines.join('\n')}\n`);
