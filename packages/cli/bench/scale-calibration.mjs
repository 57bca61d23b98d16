/**
 * Turns what `pnpm bench:scale` measured into the scaling model's costs (scaling-model.mjs), each from
 * the measurement that isolates it best:
 *
 * - compute: each run's own, measured (the slowest worker's perWorker.computeMs: decoding the shard,
 *   loading the weights, forward and backward, reading the gradient), which every prediction of that run
 *   takes as it is; the model predicts what the topology adds to it. Reported besides: a line through
 *   those times, divided by how much the cores are shared, against the largest shard;
 * - cutting the batch: a line through the coordinator's timeline.prepareMs against the batch size, from
 *   the runs and one run of a larger batch (prepareRun);
 * - Adam: the star coordinator's timeline.optimizerMs;
 * - latency per hop and cost per message: the loopback microbenchmark's pings and bursts (loopback-link.mjs);
 * - checking and adding a gradient: the product's reduction, timed alone (gradient-fold.mjs);
 * - what a byte costs Callosum through the coordinator's link, at a star worker's end, and over ring peer
 *   links: whatever the runs' step time has beyond all of the above, fitted by least squares against the
 *   bytes each run moved (the star's two at once, then the ring's). Set beside the bare link's (ws and
 *   msgpackr alone, loopback-link.mjs), the difference is Callosum's own handling of the frames
 *   (validation, copies, garbage collection in large processes).
 *
 * Each figure is a mean over the measured steps, as throughput is (samples ÷ summed step time).
 */
import { median, sum } from '../../../tools/bench-support.mjs';
import { coreSharing, fitCompute, fitLine, fitPerByte, predictStep } from './scaling-model.mjs';

/** A training sample on the wire: 28 × 28 uint8 pixels, a uint8 label, an int32 dropout key. */
export const MNIST_SAMPLE_BYTES = 28 * 28 + 1 + 4;

/**
 * @typedef {object} RunMeasurement One configuration's measured steps (scale.mjs's child).
 * @property {'star' | 'ring'} topology
 * @property {number} workers
 * @property {{ stepMs: number, samples: number, prepareMs: number, optimizerMs: number,
 *   shards: { samples: number, computeMs: number }[] }[]} steps
 */

/**
 * @typedef {object} Calibration What every run shares: the machine, the model, the microbenchmarks.
 * @property {Awaited<ReturnType<typeof import('./loopback-link.mjs').measureLoopback>>} loopback
 * @property {number[]} foldMsPerByte
 * @property {number} parameters
 * @property {number} batchSize
 * @property {number} threads
 * @property {number} cores
 * @property {RunMeasurement} prepareRun A run of a larger batch, for the cost of cutting it per sample.
 */

/**
 * The model's setup of a measured run, with the compute the run measured (its steps' mean slowest
 * computeMs): the model predicts the rest of the step from it.
 *
 * @param {RunMeasurement} run
 * @param {Calibration} calibration
 * @returns {import('./scaling-model.mjs').Setup}
 */
export function setupOf(run, { parameters, batchSize, threads, cores }) {
  const { topology, workers } = run;
  return {
    topology,
    workers,
    samplesPerStep: batchSize,
    parameters,
    threads,
    cores,
    wireMsPerByte: 0,
    measuredComputeMs: slowestComputeMs(run),
  };
}

/** A run's mean over its steps of the slowest shard's compute (decoding included, as the worker timed it). */
function slowestComputeMs({ steps }) {
  return mean(steps.map((step) => Math.max(...step.shards.map((shard) => shard.computeMs))));
}

/**
 * The model's costs, calibrated on `runs` (which need two shard sizes, a star run, and runs that move
 * bytes in each topology present).
 *
 * @param {RunMeasurement[]} runs
 * @param {Calibration} calibration
 * @returns {import('./scaling-model.mjs').Costs}
 */
export function calibrateCosts(runs, calibration) {
  const { loopback, foldMsPerByte, parameters, prepareRun } = calibration;
  const compute = fitCompute(
    runs.map((run) => ({
      samples: Math.max(...run.steps[0].shards.map((shard) => shard.samples)),
      computeMs: slowestComputeMs(run) / coreSharing(setupOf(run, calibration)),
    })),
  );
  const prepare = fitLine(
    [...runs, prepareRun].map(({ steps }) => ({
      x: steps[0].samples,
      y: mean(steps.map((step) => step.prepareMs)),
    })),
  );
  const starRuns = runs.filter(({ topology }) => topology === 'star');
  if (starRuns.length === 0) throw new Error('Adam is timed on the star coordinator; no star run to time it');
  let costs = {
    ...compute,
    // A ping is a small frame there and back: two hops.
    latencyMs: median(loopback.pingMs) / 2,
    messageMs: median(loopback.burstMessageMs),
    foldMsPerByte: median(foldMsPerByte),
    prepareMsPerStep: prepare.intercept,
    prepareMsPerSample: prepare.slope,
    optimizerMsPerParameter:
      mean(starRuns.flatMap(({ steps }) => steps.map((step) => step.optimizerMs))) / parameters,
    sampleBytes: MNIST_SAMPLE_BYTES,
    msPerByte: { coordinator: 0, worker: 0, peer: 0 },
  };
  // The star first: the ring's data travels over the coordinator's link as the star's weights do.
  const measuredOf = (topology) =>
    runs
      .filter((run) => run.topology === topology)
      .map((run) => ({ setup: setupOf(run, calibration), stepMs: meanStepMs(run) }));
  costs = {
    ...costs,
    msPerByte: { ...costs.msPerByte, ...fitPerByte(['coordinator', 'worker'], measuredOf('star'), costs) },
  };
  costs = { ...costs, msPerByte: { ...costs.msPerByte, ...fitPerByte(['peer'], measuredOf('ring'), costs) } };
  return costs;
}

/**
 * A run's step as predicted by costs calibrated without it: how well the model predicts a configuration
 * it was not fitted to. Undefined, with the reason, when the other runs cannot calibrate every cost.
 *
 * @param {RunMeasurement} run One of `runs`.
 * @param {RunMeasurement[]} runs
 * @param {Calibration} calibration
 * @returns {{ prediction?: import('./scaling-model.mjs').StepPrediction, reason?: string }}
 */
export function predictHeldOut(run, runs, calibration) {
  try {
    const costs = calibrateCosts(
      runs.filter((other) => other !== run),
      calibration,
    );
    return { prediction: predictStep(setupOf(run, calibration), costs) };
  } catch (error) {
    return { reason: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * The line through the bare loopback link's round trips (ws and the product's codec, nothing else) for
 * each framing, medians of each frame size: tensor frames, as the coordinator's weights and gradients
 * and the ring's rows and chunks travel, and plain MessagePack, for comparison. Its slope is what a byte
 * costs the bare link.
 *
 * @param {Calibration['loopback']} loopback
 * @returns {{ tensor: { intercept: number, slope: number }, plain: { intercept: number, slope: number } }}
 */
export function bareLinks(loopback) {
  const fit = (framing) =>
    fitLine(
      loopback.roundTrips
        .filter((trip) => trip.framing === framing)
        .map(({ frameBytes, roundTripMs }) => ({ x: frameBytes, y: median(roundTripMs) })),
    );
  return { tensor: fit('tensor'), plain: fit('plain') };
}

/** The mean step time of a run's measured steps. */
export function meanStepMs({ steps }) {
  return mean(steps.map((step) => step.stepMs));
}

/**
 * Global samples per second over the measured steps: their samples ÷ their summed step time.
 *
 * @param {RunMeasurement} run
 * @returns {number}
 */
export function measuredThroughput({ steps }) {
  return (sum(steps.map((step) => step.samples)) * 1000) / sum(steps.map((step) => step.stepMs));
}

function mean(numbers) {
  return sum(numbers) / numbers.length;
}
