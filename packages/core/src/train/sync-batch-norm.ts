/**
 * Synchronised BatchNormalization (as PyTorch's SyncBatchNorm): a step computed on several shards
 * normalises every shard with the statistics of the whole global batch, as one process training on that
 * batch does, so that the weights do not depend on how the batch was cut.
 *
 * A layer's batch statistics depend on the layers before it, and its gradient flows back through them
 * into every sample of the batch, so such a step takes more than one pass over the shards. Every pass
 * is stateless (the shard's samples and what the earlier passes found), so any worker may compute any
 * shard's pass and a lost worker's pass is redone like a lost shard:
 *
 * 1. moments, one pass per layer l = 0..L−1 in order: each shard's per-channel mean and sum of squared
 *    deviations of layer l's input, the layers before l normalised with the global statistics already
 *    found. combineMoments adds the shards up in shard order (Chan et al.) into layer l's mean and
 *    biased variance, the statistics tfjs's BatchNormalization uses in training.
 * 2. adjoints, one pass per layer l = L−1..0 in reverse: the gradient, with respect to layer l's mean
 *    and variance, of the shard's summed loss plus the surrogates of the layers after l; summed over
 *    the shards (sumAdjoints), how the whole batch's loss changes with those statistics.
 * 3. the gradient (computeGradients with the statistics and adjoints): of the summed loss plus every
 *    layer's surrogate, with respect to the weights, the statistics held constant.
 *
 * Layer k's surrogate on a shard sums, over the shard's elements x of the layer's input in channel c,
 *   (adjointMean[c] · x + adjointVariance[c] · (x − mean[c])²) / M,
 * M being the global batch's elements per channel. Its gradient is what flows back through
 * mean = Σx / M and variance = Σ(x − mean)² / M in one process (the part through the variance's own
 * mean is zero at the global mean). Summed over the shards, the passes give one process's gradient of
 * the whole batch, to float32 rounding.
 *
 * Statistics and adjoints travel as one flat float32 vector: for each layer in model order, its C means
 * then its C variances (or their adjoints). Model order is also the passes' order: tfjs sorts a model's
 * layers by depth, inputs first, so every layer comes after the layers that feed it, which is all the
 * passes need (a branch's layers may run in any order within a pass). Channels must be the last axis.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { CallosumError, ErrorCodes } from '../errors.js';
import { batchNormalizationLayers } from '../params/layout.js';

type Layer = LayersModel['layers'][number];
type Call = (inputs: Tensor | Tensor[], kwargs: { training?: boolean }) => Tensor | Tensor[];

/** The global statistics of every layer, and how the batch's summed loss changes with them. */
export interface SyncedStatistics {
  /** Per layer: its C means, then its C (biased) variances. */
  readonly statistics: Float32Array;
  /** The same layout: the summed loss's total derivative with respect to each statistic. */
  readonly adjoints: Float32Array;
  /** Samples in the global batch: the statistics are means over them. */
  readonly samples: number;
}

/** One of the passes before a synchronised step's gradient. */
export type BatchNormPass =
  | {
      readonly kind: 'moments';
      readonly layer: number;
      /** The global statistics of the layers before `layer` (the rest of the vector is ignored). */
      readonly statistics: Float32Array;
    }
  | ({ readonly kind: 'adjoint'; readonly layer: number } & SyncedStatistics);

/** A shard's moments of one layer's input: per channel, the mean and the sum of squared deviations. */
export interface ShardMoments {
  readonly mean: Float32Array;
  readonly squaredDeviations: Float32Array;
  /** Elements per channel: samples × positions (e.g. height × width after a convolution). */
  readonly elements: number;
}

/** What one pass over the layers is doing, while it runs (the layers' calls read it). */
interface ActivePass {
  /** Layers normalised with these (global) statistics; the others with their shard's own moments. */
  readonly normalizers: ({ mean: Tensor; variance: Tensor } | undefined)[];
  /** The layer whose shard moments the pass measures, if any. */
  readonly measured: number | undefined;
  measuredMoments?: ShardMoments;
  /** Each synchronised layer's input, for the surrogates. */
  readonly inputs: (Tensor | undefined)[];
  /** The layers called so far in this pass. */
  readonly called: Set<number>;
}

let activePass: ActivePass | undefined;

/** The channels of each BatchNormalization layer, in model order (the order of the flat vectors). */
export function batchNormChannels(model: LayersModel): number[] {
  return batchNormalizationLayers(model).map(({ movingMean }) =>
    movingMean.shape.reduce((product: number, size) => product * (size ?? 1), 1),
  );
}

/**
 * Positions per sample of each layer's input (height × width after a 2-D convolution, 1 after a dense
 * layer), in model order: a shard's moments cover samples × positions elements per channel. Undefined
 * where the model leaves a dimension open (or a layer is applied to several inputs).
 */
export function batchNormPositions(model: LayersModel): (number | undefined)[] {
  return batchNormalizationLayers(model).map(({ layer }) => {
    let shape: readonly (number | null)[];
    try {
      shape = (layer.input as { shape: (number | null)[] }).shape;
    } catch {
      return undefined;
    }
    const positions = shape.slice(1, -1);
    return positions.every((size) => size !== null)
      ? positions.reduce((product: number, size) => product * (size as number), 1)
      : undefined;
  });
}

/** Where layer `layer`'s means start in the flat vector (its variances follow its C means). */
function offsetOf(channels: readonly number[], layer: number): number {
  return channels.slice(0, layer).reduce((total, count) => total + 2 * count, 0);
}

/** Layer `layer`'s part of a flat vector: its C means (or their adjoints), then its C variances. */
function layerPart(
  channels: readonly number[],
  vector: Float32Array,
  layer: number,
): { mean: Float32Array; variance: Float32Array } {
  const count = channels[layer] as number;
  const offset = offsetOf(channels, layer);
  return {
    mean: vector.subarray(offset, offset + count),
    variance: vector.subarray(offset + count, offset + 2 * count),
  };
}

/** A pass's state before it runs: no layer called yet. */
function startPass(normalizers: ActivePass['normalizers'], measured?: number): ActivePass {
  return { normalizers, measured, inputs: [], called: new Set() };
}

/**
 * Lets every BatchNormalization layer of the model train with given statistics while a synchronised
 * pass runs; outside one, the layers are tfjs's own.
 */
export function synchronisableBatchNorm(model: LayersModel): void {
  batchNormalizationLayers(model).forEach(({ layer }, index) => {
    replaceCall(layer, index);
  });
}

function replaceCall(layer: Layer, index: number): void {
  const norm = layer as unknown as {
    call: Call;
    axis: number;
    epsilon: number;
    gamma: { read(): Tensor } | null;
    beta: { read(): Tensor } | null;
  };
  const original = norm.call.bind(layer);
  norm.call = (inputs, kwargs) => {
    const pass = activePass;
    if (kwargs?.training !== true || pass === undefined) return original(inputs, kwargs);
    const refuse = (problem: string) =>
      new CallosumError(
        ErrorCodes.TASK_INVALID,
        `BatchNormalization layer ${layer.name} ${problem}; synchronised BatchNormalization cannot ` +
          'train it (use --batch-norm local)',
      );
    // One slot of statistics per layer: a layer applied to two inputs would need two.
    if (pass.called.has(index)) throw refuse('is applied more than once');
    pass.called.add(index);
    const input = Array.isArray(inputs) ? (inputs[0] as Tensor) : inputs;
    // tfjs's kernels broadcast [C] statistics against the last axis only.
    if ((norm.axis + input.rank) % input.rank !== input.rank - 1) {
      throw refuse(`normalises axis ${norm.axis} of a rank-${input.rank} input, not the last`);
    }
    const normalize = (mean: Tensor, variance: Tensor) =>
      tf.batchNorm(input, mean, variance, norm.beta?.read(), norm.gamma?.read(), norm.epsilon);
    const global = pass.normalizers[index];
    if (global !== undefined) {
      pass.inputs[index] = input;
      return normalize(global.mean, global.variance);
    }
    // Not synchronised yet: the shard's own moments (what later layers see does not matter then).
    const { mean, variance } = tf.moments(input, everyAxisButLast(input));
    if (index === pass.measured) {
      const elements = input.size / (input.shape[input.rank - 1] as number);
      pass.measuredMoments = {
        mean: Float32Array.from(mean.dataSync()),
        squaredDeviations: Float32Array.from(variance.dataSync(), (value) => value * elements),
        elements,
      };
    }
    return normalize(mean, variance);
  };
}

function everyAxisButLast(tensor: Tensor): number[] {
  return [...tensor.shape.keys()].slice(0, -1);
}

/** Runs `body` as a pass with these normalizers; the layers are tfjs's own again afterwards. */
function withPass<T>(pass: ActivePass, body: () => T): T {
  if (activePass !== undefined) {
    throw new CallosumError(ErrorCodes.INTERNAL, 'a synchronised BatchNormalization pass inside another');
  }
  activePass = pass;
  try {
    return body();
  } finally {
    activePass = undefined;
  }
}

/**
 * The global mean and variance of each layer `known` picks, read from the flat vector, as tensors
 * (undefined for the others). They belong to the caller's tidy.
 */
function normalizersOf(
  channels: readonly number[],
  statistics: Float32Array,
  known: (layer: number) => boolean,
): ActivePass['normalizers'] {
  return channels.map((_, layer) => {
    if (!known(layer)) return undefined;
    const { mean, variance } = layerPart(channels, statistics, layer);
    return { mean: tf.tensor1d(mean), variance: tf.tensor1d(variance) };
  });
}

/**
 * Runs `forward` (a training forward pass) once as a first pass does, every layer normalised with its
 * shard's own moments, and throws TASK_INVALID naming the first layer that a synchronised step could not
 * train: one applied more than once or normalising another axis than the last (refused as it is
 * called), or one the pass never calls.
 */
export function checkSynchronisablePass(model: LayersModel, forward: () => Tensor): void {
  const channels = batchNormChannels(model);
  let called = new Set<number>();
  tf.tidy(() => {
    const active = startPass(channels.map(() => undefined));
    withPass(active, forward);
    called = active.called;
  });
  const missing = channels.findIndex((_, layer) => !called.has(layer));
  if (missing >= 0) throw notApplied(missing);
}

/**
 * Runs `forward` (a training forward pass returning the shard's summed loss) as the moments pass of
 * `layer`: returns the shard's moments of that layer's input.
 */
export function measureMoments(
  model: LayersModel,
  pass: Extract<BatchNormPass, { kind: 'moments' }>,
  forward: () => Tensor,
): ShardMoments {
  const channels = batchNormChannels(model);
  checkLayer(channels, pass.layer);
  let measured: ShardMoments | undefined;
  tf.tidy(() => {
    const active = startPass(
      normalizersOf(channels, pass.statistics, (layer) => layer < pass.layer),
      pass.layer,
    );
    withPass(active, forward);
    measured = active.measuredMoments;
  });
  if (measured === undefined) throw notApplied(pass.layer);
  return measured;
}

/**
 * Runs `forward` as the adjoint pass of `layer`: returns the gradient of the shard's summed loss plus
 * the surrogates of the layers after it with respect to its mean, then its variance.
 */
export function measureAdjoint(
  model: LayersModel,
  pass: Extract<BatchNormPass, { kind: 'adjoint' }>,
  forward: () => Tensor,
): Float32Array {
  const channels = batchNormChannels(model);
  checkLayer(channels, pass.layer);
  return tf.tidy(() => {
    const normalizers = normalizersOf(channels, pass.statistics, () => true);
    const own = normalizers[pass.layer] as { mean: Tensor; variance: Tensor };
    const [byMean, byVariance] = tf.grads((mean: Tensor, variance: Tensor) => {
      const active = startPass(
        normalizers.map((pair, layer) => (layer === pass.layer ? { mean, variance } : pair)),
      );
      return withPass(active, () => tf.add(forward(), surrogate(active, channels, pass, pass.layer + 1)));
    })([own.mean, own.variance]);
    const result = new Float32Array(2 * (channels[pass.layer] as number));
    result.set(byMean?.dataSync() as Float32Array);
    result.set(byVariance?.dataSync() as Float32Array, channels[pass.layer]);
    return result;
  });
}

/**
 * Runs `pass` (a forward and backward pass whose `forward` returns the summed loss) with every layer
 * normalised by the global statistics, the surrogates added to what `forward` returns. Tensors it
 * creates belong to the caller's tidy.
 */
export function withSyncedStatistics<T>(
  model: LayersModel,
  synced: SyncedStatistics,
  pass: (objective: (forward: () => Tensor) => Tensor) => T,
): T {
  const channels = batchNormChannels(model);
  const active = startPass(normalizersOf(channels, synced.statistics, () => true));
  return withPass(active, () => pass((forward) => tf.add(forward(), surrogate(active, channels, synced, 0))));
}

/**
 * Each moving statistic's value for a shard of `count` samples of a synchronised step: its global batch
 * value × count (the reduction's sample-weighted mean of those is the global value again).
 */
export function globalStatisticValue(
  model: LayersModel,
  synced: SyncedStatistics,
  count: number,
): (weight: LayersModel['weights'][number]) => Tensor {
  const channels = batchNormChannels(model);
  const values = new Map<unknown, Float32Array>();
  batchNormalizationLayers(model).forEach(({ movingMean, movingVariance }, layer) => {
    const { mean, variance } = layerPart(channels, synced.statistics, layer);
    values.set(movingMean, mean);
    values.set(movingVariance, variance);
  });
  return (weight) => {
    const value = values.get(weight);
    if (value === undefined) {
      throw new CallosumError(ErrorCodes.INTERNAL, `${weight.name} is no BatchNormalization statistic`);
    }
    return tf.mul(tf.reshape(tf.tensor1d(value), weight.read().shape), count);
  };
}

/** The surrogates of layers `from`.. of the pass, summed: a scalar. */
function surrogate(
  pass: ActivePass,
  channels: readonly number[],
  synced: SyncedStatistics,
  from: number,
): Tensor {
  let total: Tensor = tf.scalar(0);
  for (let layer = from; layer < channels.length; layer++) {
    const input = pass.inputs[layer];
    const global = pass.normalizers[layer];
    if (input === undefined || global === undefined) throw notApplied(layer);
    const reductionAxes = everyAxisButLast(input);
    // Elements per channel in the whole batch: the global samples × this layer's positions per sample.
    const globalElements =
      synced.samples * (input.size / (input.shape[0] as number) / (channels[layer] as number));
    const adjoint = layerPart(channels, synced.adjoints, layer);
    const adjointMean = tf.tensor1d(adjoint.mean);
    const adjointVariance = tf.tensor1d(adjoint.variance);
    const sums = tf.sum(input, reductionAxes);
    const squares = tf.sum(tf.square(tf.sub(input, global.mean)), reductionAxes);
    const term = tf.add(tf.sum(tf.mul(adjointMean, sums)), tf.sum(tf.mul(adjointVariance, squares)));
    total = tf.add(total, tf.div(term, globalElements));
  }
  return total;
}

/** A layer that a training pass did not go through: its statistics can be neither measured nor used. */
function notApplied(layer: number): CallosumError {
  return new CallosumError(
    ErrorCodes.TASK_INVALID,
    `BatchNormalization layer ${layer} (in model order) is not applied in a training pass (applied with ` +
      'training: false, or off the path to the output); synchronised BatchNormalization cannot train it ' +
      '(use --batch-norm local)',
  );
}

function checkLayer(channels: readonly number[], layer: number): void {
  if (layer >= channels.length) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `BatchNormalization layer ${layer} asked for; the model has ${channels.length}`,
    );
  }
}

/**
 * Layer statistics from every shard's moments, added in the order given (shard order, so that a step's
 * result does not depend on arrival), in float64: the mean, and the variance as tfjs's moments computes
 * it (biased), rounded to float32 into `statistics` at the layer's place.
 */
export function combineMoments(
  shards: readonly ShardMoments[],
  channels: readonly number[],
  layer: number,
  statistics: Float32Array,
): void {
  const into = layerPart(channels, statistics, layer);
  for (let channel = 0; channel < into.mean.length; channel++) {
    let elements = 0;
    let mean = 0;
    let squaredDeviations = 0;
    for (const shard of shards) {
      if (shard.elements === 0) continue;
      const shardMean = shard.mean[channel] as number;
      const total = elements + shard.elements;
      const delta = shardMean - mean;
      mean += (delta * shard.elements) / total;
      squaredDeviations +=
        (shard.squaredDeviations[channel] as number) + (delta * delta * elements * shard.elements) / total;
      elements = total;
    }
    into.mean[channel] = mean;
    into.variance[channel] = elements === 0 ? 0 : squaredDeviations / elements;
  }
}

/** The shards' adjoints of one layer added in the order given, in float64, into `adjoints` at its place. */
export function sumAdjoints(
  shards: readonly Float32Array[],
  channels: readonly number[],
  layer: number,
  adjoints: Float32Array,
): void {
  const size = 2 * (channels[layer] as number);
  const offset = offsetOf(channels, layer);
  for (let i = 0; i < size; i++) {
    let total = 0;
    for (const shard of shards) total += shard[i] as number;
    adjoints[offset + i] = total;
  }
}

/** The length of the flat statistics (and adjoints) vector of a model with these layers. */
export function statisticsLength(channels: readonly number[]): number {
  return offsetOf(channels, channels.length);
}
