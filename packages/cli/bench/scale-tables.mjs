/**
 * The tables `pnpm bench:scale` prints (scale.mjs): the calibrated costs, predicted against measured
 * throughput for the runs, and the predictions for clusters of GPU workers.
 */
import { formatNumber, formatTable, median, shardSizes } from '../../../tools/bench-support.mjs';
import { bareLinks, meanStepMs, measuredThroughput, predictHeldOut, setupOf } from './scale-calibration.mjs';
import { coreSharing, predictStep, relativeError } from './scaling-model.mjs';

/** The bar for the predictions of the measured runs. */
const TOLERANCE = 0.15;
/** 1 is the baseline of the scaling efficiency. */
const PREDICTED_WORKERS = [1, 8, 32, 128];
const BANDWIDTHS_GBIT = [10, 25, 100];
/** Samples per worker per step in the predictions: each GPU computes a batch of this many. */
const GPU_BATCH = 128;
/** The second model of the predictions, about ResNet-50's 25.6 million. */
const LARGE_PARAMETERS = 25_000_000;
const MB = 1e6;

/**
 * The loopback round trips with the lines fitted to them, then every cost of the model and where it
 * comes from.
 *
 * @param {import('./scaling-model.mjs').Costs} costs
 * @param {import('./scale-calibration.mjs').Calibration} calibration
 * @returns {string[]}
 */
export function calibrationLines(costs, { loopback, parameters, threads }) {
  const bare = bareLinks(loopback);
  const trips = [['framing', 'payload bytes', 'frame bytes', 'median ms', 'min ms', 'line ms', 'rounds']];
  for (const trip of loopback.roundTrips) {
    const link = bare[trip.framing];
    trips.push([
      trip.framing,
      formatNumber(trip.payloadBytes, 0),
      formatNumber(trip.frameBytes, 0),
      median(trip.roundTripMs).toFixed(3),
      Math.min(...trip.roundTripMs).toFixed(3),
      (link.intercept + trip.frameBytes * link.slope).toFixed(3),
      String(trip.roundTripMs.length),
    ]);
  }
  const modelMB = (parameters * 4) / MB;
  const perByte = (msPerByte) =>
    `${(msPerByte * MB).toFixed(3)} ms/MB (${msPerByte > 0 ? ((8 / msPerByte) * 1e-6).toFixed(1) : '∞'} Gbit/s, ` +
    `${(msPerByte * MB * modelMB).toFixed(2)} ms per model)`;
  const rows = [
    ['cost', 'value', 'measured by'],
    [
      'compute per sample',
      `${costs.computeMsPerSample.toFixed(3)} ms`,
      `line through each run's mean slowest computeMs ÷ core sharing against its largest shard (${threads} thread(s) per worker); ` +
        "reported only: each run's prediction below takes the compute it measured",
    ],
    ['compute per shard', `${costs.computeMsPerShard.toFixed(2)} ms`, 'the same line at 0 samples'],
    [
      'latency per hop',
      `${(costs.latencyMs * 1e3).toFixed(0)} µs`,
      'half the median loopback ping (a small frame there and back)',
    ],
    [
      'per message',
      `${(costs.messageMs * 1e3).toFixed(1)} µs`,
      'bursts of 200 small frames: time to the last answer ÷ 200, median',
    ],
    [
      'per byte, coordinator link',
      perByte(costs.msPerByte.coordinator),
      'fitted to the star runs with the next: their step beyond every other cost, against 2 × workers × model + data bytes',
    ],
    [
      "per byte, star worker's end",
      perByte(costs.msPerByte.worker),
      "… and against the slowest worker's own 2 × model bytes (weights in, gradient out)",
    ],
    [
      'per byte, ring peer link',
      perByte(costs.msPerByte.peer),
      'fitted to the ring runs: their step beyond every other cost, against 2 (N−1)/N × model bytes',
    ],
    [
      '  bare link, tensor frames',
      perByte(bare.tensor.slope),
      'slope of the loopback line (ws + codec alone), for the three costs above',
    ],
    [
      'check and add a gradient',
      `${(costs.foldMsPerByte * MB).toFixed(3)} ms/MB (${(costs.foldMsPerByte * MB * modelMB).toFixed(2)} ms per model)`,
      "the product's assertFiniteShard and reduction, alone, median",
    ],
    [
      'cut the batch, per step',
      `${costs.prepareMsPerStep.toFixed(2)} ms`,
      "line through each run's mean timeline.prepareMs against its batch, and a run of 8 × the batch",
    ],
    [
      'cut the batch, per sample',
      `${(costs.prepareMsPerSample * 1e3).toFixed(2)} µs`,
      'slope of the same line (gathering and augmenting the samples)',
    ],
    [
      'Adam, per parameter',
      `${(costs.optimizerMsPerParameter * 1e6).toFixed(2)} ns (${(costs.optimizerMsPerParameter * parameters).toFixed(2)} ms per model)`,
      "mean of the star coordinator's timeline.optimizerMs ÷ parameters",
    ],
    ['sample on the wire', `${costs.sampleBytes} bytes`, 'MNIST: 784 pixels, a label, a dropout key'],
  ];
  return [
    'Loopback WebSocket, round trips with the product codec (a frame out, a small answer back; line = the fit):',
    '',
    ...formatTable(trips, new Set([1, 2, 3, 4, 5, 6])),
    `pings (a small frame there and back, before the large ones of each round): median ` +
      `${median(loopback.pingMs).toFixed(3)} ms, min ${Math.min(...loopback.pingMs).toFixed(3)} ms, ` +
      `${loopback.pingMs.length} pings`,
    '',
    'Calibrated costs:',
    '',
    ...formatTable(rows, new Set([1])),
  ];
}

/**
 * Predicted against measured throughput of every run, by the costs calibrated on all the runs and by
 * costs calibrated without the run (held out); the step split as the model has it; whether every
 * prediction is within the tolerance.
 *
 * @param {(import('./scale-calibration.mjs').RunMeasurement & { load: number, otherCores?: number })[]} runs
 * @param {import('./scaling-model.mjs').Costs} costs
 * @param {import('./scale-calibration.mjs').Calibration} calibration
 * @returns {string[]}
 */
export function comparisonLines(runs, costs, calibration) {
  const rows = [
    [
      'topology',
      'workers',
      'batch/worker',
      'core sharing',
      'measured samples/s',
      'predicted',
      'error',
      'held out',
      'error',
      'step ms',
      'predicted',
      'compute',
      'transfer',
      'serial',
      'latency',
      'other CPU',
      'load',
    ],
  ];
  const fitted = [];
  const heldOut = [];
  const notes = [];
  for (const run of runs) {
    const setup = setupOf(run, calibration);
    const predicted = predictStep(setup, costs);
    const measured = measuredThroughput(run);
    const error = relativeError(predicted.samplesPerSecond, measured);
    fitted.push({ run, error });
    const held = predictHeldOut(run, runs, calibration);
    const heldError = held.prediction && relativeError(held.prediction.samplesPerSecond, measured);
    if (heldError === undefined) notes.push(`${run.topology} ${run.workers}: not held out: ${held.reason}`);
    else heldOut.push({ run, error: heldError });
    rows.push([
      run.topology,
      String(run.workers),
      shardSizes(calibration.batchSize, run.workers),
      `${coreSharing(setup).toFixed(1)}×`,
      formatNumber(measured, 0),
      formatNumber(predicted.samplesPerSecond, 0),
      percent(error),
      held.prediction === undefined ? '—' : formatNumber(held.prediction.samplesPerSecond, 0),
      heldError === undefined ? '—' : percent(heldError),
      meanStepMs(run).toFixed(1),
      predicted.stepMs.toFixed(1),
      predicted.computeMs.toFixed(1),
      predicted.transferMs.toFixed(1),
      predicted.serialMs.toFixed(1),
      predicted.latencyMs.toFixed(1),
      run.otherCores === undefined ? '—' : run.otherCores.toFixed(2),
      run.load.toFixed(2),
    ]);
  }
  return [
    `Measured and predicted, ${calibration.cores} cores (samples/s = measured samples ÷ summed StepReport.stepMs; ` +
      'step ms = their mean):',
    '',
    ...formatTable(rows, new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])),
    '',
    'predicted = by the costs calibrated on every run; held out = by costs calibrated on the other runs only.',
    'core sharing = max(1, workers × threads ÷ cores): how much slower each worker computes (and, in the ring, ' +
      'folds and updates)',
    "compute = the run's own, as measured (its slowest worker's mean computeMs); transfer = bytes over the " +
      'busiest link × per byte + messages × per message',
    "(star: plus the slowest worker's own round trip; ring: plus each worker's peer bytes, and folding its chunk " +
      'and running Adam, × sharing);',
    'serial = cutting the batch (star: plus folding every gradient and Adam);',
    'latency = hops × latency (star 2, ring 6). other CPU = cores that processes other than the run kept busy ' +
      'during its measured steps;',
    'load = highest 1-minute load average when one of its processes finished (the run itself included).',
    summaryLine('predicted', fitted),
    summaryLine('held out', heldOut),
    ...notes,
  ];
}

/** The largest error of a set of predictions and those beyond the tolerance. */
function summaryLine(what, errors) {
  if (errors.length === 0) return `${what}: none`;
  const worst = errors.reduce((a, b) => (Math.abs(b.error) > Math.abs(a.error) ? b : a));
  const outside = errors.filter(({ error }) => Math.abs(error) > TOLERANCE);
  return (
    `${what}: largest error ${percent(worst.error)} (${worst.run.topology}, ${worst.run.workers} workers); ` +
    (outside.length === 0
      ? `every one within ${100 * TOLERANCE}%`
      : `${outside.length} of ${errors.length} outside ${100 * TOLERANCE}%: ` +
        outside.map(({ run }) => `${run.topology} ${run.workers}`).join(', '))
  );
}

function percent(error) {
  return `${error >= 0 ? '+' : ''}${(100 * error).toFixed(1)}%`;
}

/**
 * Throughput and scaling efficiency of clusters with one GPU per worker, from the calibrated costs and
 * an assumed GPU time per step: with the costs per byte as calibrated, then without them (a transport as
 * fast as the wire), which shows what the network alone would allow.
 *
 * @param {object} options
 * @param {import('./scaling-model.mjs').Costs} options.costs
 * @param {number} options.parameters The reference CNN's.
 * @param {number} options.gpuStepMs Assumed GPU time of a 128-sample step of the reference CNN.
 * @param {number} options.largeGpuStepMs The same for the 25M-parameter model.
 * @returns {string[]}
 */
export function predictionLines({ costs, parameters, gpuStepMs, largeGpuStepMs }) {
  const models = [
    { name: `reference CNN (${formatNumber(parameters / MB, 2)}M)`, parameters, gpuStepMs },
    {
      name: `${LARGE_PARAMETERS / MB}M-parameter model`,
      parameters: LARGE_PARAMETERS,
      gpuStepMs: largeGpuStepMs,
    },
  ];
  const wireOnly = { ...costs, msPerByte: { coordinator: 0, worker: 0, peer: 0 } };
  return [
    `Predicted: one GPU per worker, each on its own machine, ${GPU_BATCH} samples per worker per step (global ` +
      `batch ${GPU_BATCH} × workers), MNIST-sized samples, with the costs above:`,
    '',
    ...predictionTable(models, costs),
    '',
    'The same without any software cost per byte (a byte costs only the wire: 8 ÷ bandwidth), all else as above:',
    '',
    ...predictionTable(models, wireOnly),
    '',
    'efficiency = samples/s ÷ (workers × samples/s of one worker, same topology and bandwidth). largest part = ' +
      `of the step at ${BANDWIDTHS_GBIT[0]} Gbit/s.`,
    ...models.map(
      (model) =>
        `One GPU alone, with nothing else in a step, computes ${formatNumber((GPU_BATCH * 1000) / model.gpuStepMs, 0)} ` +
        `samples/s of the ${model.name}.`,
    ),
    'A byte costs the slower of the wire and the software (they work on it at the same time); folding, Adam, ' +
      "cutting the batch and messages cost this machine's CPU figures.",
    'GPU ms/step are assumptions (--gpu-step-ms, --large-gpu-step-ms): the reference CNN needs ~0.7 GFLOP per ' +
      '128-sample step, microseconds of arithmetic on a',
    'datacenter GPU, so its step is bound by kernel launches and framework overhead (2 ms assumed, not measured: ' +
      'no GPU here); 136 ms is ResNet-50 v1.5',
    '(25.6M parameters) at 938 images/s on one A100 80GB in TF32 (NVIDIA DeepLearningExamples, PyTorch 21.03 ' +
      'container), taken as the 25M model.',
  ];
}

function predictionTable(models, costs) {
  const header = ['model', 'GPU ms/step', 'topology', 'workers'];
  for (const gbit of BANDWIDTHS_GBIT) header.push(`${gbit} Gbit/s samples/s`, 'efficiency');
  header.push('largest part');
  const rows = [header];
  for (const model of models) {
    const gpu = { ...costs, computeMsPerSample: model.gpuStepMs / GPU_BATCH, computeMsPerShard: 0 };
    for (const topology of ['star', 'ring']) {
      const predict = (workers, gbit) =>
        predictStep(
          {
            topology,
            workers,
            samplesPerStep: workers * GPU_BATCH,
            parameters: model.parameters,
            threads: 1,
            cores: Number.POSITIVE_INFINITY,
            wireMsPerByte: 8 / ((gbit * 1e9) / 1e3),
          },
          gpu,
        );
      for (const workers of PREDICTED_WORKERS) {
        const cells = BANDWIDTHS_GBIT.flatMap((gbit) => {
          const { samplesPerSecond } = predict(workers, gbit);
          const alone = predict(1, gbit).samplesPerSecond;
          return [
            formatNumber(samplesPerSecond, 0),
            `${((100 * samplesPerSecond) / (workers * alone)).toFixed(1)}%`,
          ];
        });
        rows.push([
          model.name,
          String(model.gpuStepMs),
          topology,
          String(workers),
          ...cells,
          largestPart(predict(workers, BANDWIDTHS_GBIT[0])),
        ]);
      }
    }
  }
  return formatTable(rows, new Set([1, 3, 4, 5, 6, 7, 8, 9]));
}

/** The part of a predicted step that takes longest, and its share of the step. */
function largestPart(predicted) {
  const parts = [
    ['serial', predicted.serialMs],
    ['compute', predicted.computeMs],
    ['transfer', predicted.transferMs],
    ['latency', predicted.latencyMs],
  ];
  const [name, ms] = parts.reduce((a, b) => (b[1] > a[1] ? b : a));
  return `${name} ${((100 * ms) / predicted.stepMs).toFixed(0)}%`;
}
