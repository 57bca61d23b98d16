/**
 * The scaling model of `pnpm bench:scale` (scale.mjs): what one synchronous training step costs in each
 * topology, built from a few costs, and the least-squares fits that calibrate them. Pure functions, no
 * I/O, so that they can be tested (scaling-model.test.ts).
 *
 * A step is modelled as the sum of its parts, with no overlap between them (a synchronous step overlaps
 * little: workers wait for the weights, the coordinator for the last gradient):
 *
 *   step = serial work on the coordinator (cutting the batch, and in the star folding and Adam)
 *        + compute (the largest shard × time per sample + a fixed cost per shard, slowed by sharing cores)
 *        + bytes over the busiest link × cost per byte + messages through the busiest end × cost per message
 *        + latency × hops
 *
 * Star: every worker's weights go out of and its gradient comes into the coordinator, which checks and
 * adds each gradient, then runs Adam: its link carries 2 × workers × 4P bytes and the data, one after
 * another; the slowest worker's own end of its round trip (receiving the weights, sending the gradient,
 * 2 × 4P bytes) is on the step's path once, as the other workers' ends overlap with it. A step is 2 hops
 * (weights and shard out, gradient back). Ring: the coordinator's link carries the data and
 * small control messages; each worker sends its gradient rows straight to each chunk's owner and the
 * owner its mean chunk to every other (2 × (N−1)/N × 4P bytes each way per worker), adds the N rows of
 * its chunk, and runs Adam on its replica. As Callosum runs it a ring step is 6 hops: shard out,
 * `computed` back, `reduce` out, scatter, gather, `reduced` back (the `apply` travels with the next shard).
 */

/** Bytes of one float32 parameter. */
const BYTES_PER_PARAMETER = 4;

/**
 * @typedef {object} Costs What a step's parts cost, as calibrated (scale.mjs) or assumed (a GPU).
 * @property {number} computeMsPerSample A worker computing one more sample, on a core of its own.
 * @property {number} computeMsPerShard A worker's fixed cost per shard (loading the weights, decoding).
 * @property {number} latencyMs One message's one-way latency (one hop).
 * @property {number} messageMs CPU time one small message costs the end that sends or reads many.
 * @property {{ coordinator: number, worker: number, peer: number }} msPerByte What moving one byte costs
 *   Callosum (encoding, sending, receiving, decoding, validating, the garbage it leaves): through the
 *   coordinator's link (the star's weights and gradients, and in both topologies the data), at a star
 *   worker's end of its round trip, and over a ring worker's peer links.
 * @property {number} foldMsPerByte Checking one received gradient byte for NaN/Inf and adding it.
 * @property {number} prepareMsPerStep The coordinator's fixed cost of cutting a batch into shards.
 * @property {number} prepareMsPerSample Its cost per sample (gathering, augmenting).
 * @property {number} optimizerMsPerParameter Adam on the CPU, per parameter.
 * @property {number} sampleBytes One training sample on the wire (features and label).
 */

/**
 * @typedef {object} Setup One distributed configuration.
 * @property {'star' | 'ring'} topology
 * @property {number} workers
 * @property {number} samplesPerStep The global batch.
 * @property {number} parameters
 * @property {number} threads Compute threads per worker.
 * @property {number} cores Cores all the workers share; Infinity when each has its own machine.
 * @property {number} wireMsPerByte The network's time per byte (1 / bandwidth); 0 on loopback, where
 *   only the software's cost per byte counts.
 * @property {number} [measuredComputeMs] The slowest worker's compute per step as measured in a run (core
 *   sharing included). Given, it replaces the modelled compute: on a shared VM one process computes up to
 *   a quarter faster or slower than the next of the same configuration, and the model is about what
 *   distribution adds to the compute, not about that.
 */

/**
 * @typedef {object} StepPrediction
 * @property {number} stepMs
 * @property {number} samplesPerSecond
 * @property {number} serialMs The coordinator's own work (cutting the batch; star: folding, Adam).
 * @property {number} computeMs The largest shard's compute, slowed by shared cores.
 * @property {number} transferMs Bytes and messages through the busiest end, and the ring's own folding and
 *   Adam on each worker.
 * @property {number} latencyMs Latency × hops.
 * @property {number} busiestLinkBytes Bytes one step moves over the busiest link (one end, both ways).
 */

/**
 * How much slower each process computes when the workers' threads outnumber the cores: they share them.
 *
 * @param {{ workers: number, threads: number, cores: number }} setup
 * @returns {number} ≥ 1
 */
export function coreSharing({ workers, threads, cores }) {
  return Math.max(1, (workers * threads) / cores);
}

/**
 * One step's time and throughput in a topology, and how it splits.
 *
 * @param {Setup} setup
 * @param {Costs} costs
 * @returns {StepPrediction}
 */
export function predictStep(setup, costs) {
  const { topology, workers, samplesPerStep, parameters, wireMsPerByte } = setup;
  const sharing = coreSharing(setup);
  const modelBytes = parameters * BYTES_PER_PARAMETER;
  const dataBytes = samplesPerStep * costs.sampleBytes;
  // The slowest worker has the largest shard.
  const largestShard = Math.ceil(samplesPerStep / workers);
  const computeMs =
    setup.measuredComputeMs ?? sharing * (costs.computeMsPerShard + costs.computeMsPerSample * largestShard);
  const optimizerMs = costs.optimizerMsPerParameter * parameters;
  const prepareMs = costs.prepareMsPerStep + costs.prepareMsPerSample * samplesPerStep;
  // A byte costs what the slower of the wire and the software allows (they work on it at the same time).
  const perByte = (link) => Math.max(costs.msPerByte[link], wireMsPerByte);

  const parts =
    topology === 'star'
      ? starParts({ workers, modelBytes, dataBytes, costs, perByte, optimizerMs })
      : ringParts({ workers, modelBytes, dataBytes, costs, perByte, sharing, optimizerMs });
  const serialMs = prepareMs + parts.serialMs;
  const stepMs = serialMs + computeMs + parts.transferMs + parts.latencyMs;
  return {
    stepMs,
    samplesPerSecond: (samplesPerStep * 1000) / stepMs,
    serialMs,
    computeMs,
    transferMs: parts.transferMs,
    latencyMs: parts.latencyMs,
    busiestLinkBytes: parts.busiestLinkBytes,
  };
}

/** The star: everything goes through the coordinator, one message at a time. */
function starParts({ workers, modelBytes, dataBytes, costs, perByte, optimizerMs }) {
  const busiestLinkBytes = 2 * workers * modelBytes + dataBytes;
  // Per worker: the weights, the shard, the gradient.
  const messages = 3 * workers;
  return {
    busiestLinkBytes,
    transferMs:
      busiestLinkBytes * perByte('coordinator') +
      2 * modelBytes * perByte('worker') +
      messages * costs.messageMs,
    // The coordinator checks and adds every gradient, then runs Adam.
    serialMs: workers * modelBytes * costs.foldMsPerByte + optimizerMs,
    latencyMs: 2 * costs.latencyMs,
  };
}

/**
 * The ring: the coordinator sends the data and five small messages per worker (shard, `computed`,
 * `reduce`, `reduced`, `apply`); the workers exchange gradient chunks at the same time as each other.
 * On shared cores their folding and Adam slow down as their compute does; the exchange does not: it is
 * mostly waiting on the peers' messages (measured: per byte, it costs 2 workers on their own cores as
 * much as 3 and 4 on 2 cores, while scaling it with the sharing made 2 workers 11–27% slower than
 * predicted, docs/benchmarks.md).
 */
function ringParts({ workers, modelBytes, dataBytes, costs, perByte, sharing, optimizerMs }) {
  const peerBytes = (2 * (workers - 1) * modelBytes) / workers;
  // Reduce-scatter and all-gather: a message to and one from every other worker, twice.
  const peerMessages = 4 * (workers - 1);
  const coordinatorMs = dataBytes * perByte('coordinator') + 5 * workers * costs.messageMs;
  const exchangeMs = peerBytes * perByte('peer') + peerMessages * costs.messageMs;
  // The owner checks and adds every worker's rows of its chunk, and checks the chunks it is sent.
  const updateMs = modelBytes * costs.foldMsPerByte + optimizerMs;
  return {
    busiestLinkBytes: Math.max(peerBytes, dataBytes),
    transferMs: coordinatorMs + exchangeMs + sharing * updateMs,
    serialMs: 0,
    latencyMs: 6 * costs.latencyMs,
  };
}

/**
 * The least-squares line through the points.
 *
 * @param {{ x: number, y: number }[]} points At least two distinct x.
 * @returns {{ intercept: number, slope: number }}
 */
export function fitLine(points) {
  const n = points.length;
  const meanX = points.reduce((total, { x }) => total + x, 0) / n;
  const meanY = points.reduce((total, { y }) => total + y, 0) / n;
  const sxx = points.reduce((total, { x }) => total + (x - meanX) ** 2, 0);
  if (!(sxx > 0)) throw new Error('a line needs points at two or more distinct x');
  const sxy = points.reduce((total, { x, y }) => total + (x - meanX) * (y - meanY), 0);
  const slope = sxy / sxx;
  return { intercept: meanY - slope * meanX, slope };
}

/**
 * The costs per byte of the given links that make the model's step times closest to the measured ones
 * (least squares, none below 0: a link whose cost would come out negative is set to 0 and the others
 * fitted again). The step time is linear in each, so each measurement gives a point: how much the step
 * grows per ms/byte of each link, and the measured step less the model's step with those costs at 0.
 *
 * @param {(keyof Costs['msPerByte'])[]} links
 * @param {{ setup: Setup, stepMs: number }[]} measured
 * @param {Costs} costs Every other cost; those of `links` are ignored.
 * @returns {Partial<Costs['msPerByte']>} The fitted cost of each of `links`.
 */
export function fitPerByte(links, measured, costs) {
  const stepAt = (setup, unit) => {
    const msPerByte = { ...costs.msPerByte };
    for (const link of links) msPerByte[link] = link === unit ? 1 : 0;
    return predictStep(setup, { ...costs, msPerByte }).stepMs;
  };
  const rows = measured.map(({ setup, stepMs }) => {
    const base = stepAt(setup, undefined);
    return { x: links.map((link) => stepAt(setup, link) - base), y: stepMs - base };
  });
  let active = links.map((_, index) => index);
  for (;;) {
    const fitted = leastSquares(rows.map(({ x, y }) => ({ x: active.map((index) => x[index]), y })));
    const negative = fitted.findIndex((value) => value < 0);
    if (negative === -1) {
      return Object.fromEntries(
        links.map((link, index) => [link, active.includes(index) ? fitted[active.indexOf(index)] : 0]),
      );
    }
    active = active.filter((_, position) => position !== negative);
  }
}

/**
 * Solves the normal equations of a linear least-squares fit without intercept, y ≈ Σ coefficient_j x_j,
 * by Gaussian elimination (a handful of unknowns).
 *
 * @param {{ x: number[], y: number }[]} rows
 * @returns {number[]}
 */
function leastSquares(rows) {
  const k = rows[0]?.x.length ?? 0;
  // [XᵀX | Xᵀy]
  const matrix = Array.from({ length: k }, (_, i) => [
    ...Array.from({ length: k }, (_, j) => rows.reduce((total, { x }) => total + x[i] * x[j], 0)),
    rows.reduce((total, { x, y }) => total + x[i] * y, 0),
  ]);
  for (let column = 0; column < k; column += 1) {
    const pivot = matrix[column][column];
    if (!(Math.abs(pivot) > 0)) throw new Error('the measurements do not tell these costs per byte apart');
    for (let row = 0; row < k; row += 1) {
      if (row === column) continue;
      const factor = matrix[row][column] / pivot;
      for (let j = column; j <= k; j += 1) matrix[row][j] -= factor * matrix[column][j];
    }
  }
  return matrix.map((row, i) => row[k] / row[i]);
}

/**
 * A worker's compute time as a fixed cost per shard plus a cost per sample, fitted to shards computed
 * with a core each (where cores are shared, divide by coreSharing first).
 *
 * @param {{ samples: number, computeMs: number }[]} shards
 * @returns {{ computeMsPerShard: number, computeMsPerSample: number }}
 */
export function fitCompute(shards) {
  const { intercept, slope } = fitLine(
    shards.map(({ samples, computeMs }) => ({ x: samples, y: computeMs })),
  );
  return { computeMsPerShard: intercept, computeMsPerSample: slope };
}

/**
 * (predicted − measured) ÷ measured.
 *
 * @param {number} predicted
 * @param {number} measured
 * @returns {number}
 */
export function relativeError(predicted, measured) {
  return (predicted - measured) / measured;
}
