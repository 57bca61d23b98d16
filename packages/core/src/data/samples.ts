/**
 * Any task's data: features and labels of any per-sample shape, stored as float32, int32 or uint8
 * arrays, sample after sample. The coordinator gathers the samples of each shard as stored (that is
 * what travels), and a worker turns them into the model's input and the loss's labels.
 */
import { CallosumError, ErrorCodes } from '../errors.js';

export type SampleValues = Float32Array | Int32Array | Uint8Array;
export type SampleDtype = 'float32' | 'int32' | 'uint8';

/** `values` holds `count × size(sampleShape)` elements, sample after sample, row-major. */
export interface SampleTensor {
  readonly values: SampleValues;
  readonly sampleShape: readonly number[];
}

export interface SampleSet {
  readonly count: number;
  readonly features: SampleTensor;
  readonly labels: SampleTensor;
}

/** Some samples of a set, in the set's own dtypes: what a shard request carries. */
export interface RawSamples {
  readonly count: number;
  readonly features: SampleValues;
  readonly labels: SampleValues;
  /** Training samples' keys, which their dropout masks are drawn from (task/dropout.ts). */
  readonly keys?: Uint32Array | undefined;
}

/** A batch ready for a model: features in the model input's dtype, labels in the loss's. */
export interface SampleBatch {
  readonly count: number;
  readonly features: Float32Array | Int32Array;
  readonly labels: Float32Array | Int32Array;
  readonly keys?: Uint32Array | undefined;
}

/** How a task's stored samples become a model batch. */
export interface BatchConversion {
  /** The model input's dtype. */
  readonly featureDtype: 'float32' | 'int32';
  /** uint8 features are divided by this on their way to a float32 input (255 for MNIST's pixels). */
  readonly featureDivisor?: number | undefined;
  readonly labelDtype: 'float32' | 'int32';
}

export function dtypeOf(values: SampleValues): SampleDtype {
  return values instanceof Float32Array ? 'float32' : values instanceof Int32Array ? 'int32' : 'uint8';
}

export function sampleSize(sampleShape: readonly number[]): number {
  return sampleShape.reduce((product, dim) => product * dim, 1);
}

/** Samples [start, end) of `set`, as views (no copy). */
export function sliceSampleSet(set: SampleSet, start: number, end: number): SampleSet {
  const rows = (tensor: SampleTensor) => {
    const size = sampleSize(tensor.sampleShape);
    return { values: tensor.values.subarray(start * size, end * size), sampleShape: tensor.sampleShape };
  };
  return { count: end - start, features: rows(set.features), labels: rows(set.labels) };
}

/** Copies the samples at `indices` (in that order). */
export function gatherSamples(set: SampleSet, indices: ArrayLike<number>): RawSamples {
  for (let position = 0; position < indices.length; position++) {
    const sample = indices[position] as number;
    if (!Number.isInteger(sample) || sample < 0 || sample >= set.count) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `gather: indices[${position}] = ${sample} is not a sample index in 0..${set.count - 1}`,
      );
    }
  }
  return {
    count: indices.length,
    features: gatherRows(set.features, indices),
    labels: gatherRows(set.labels, indices),
  };
}

function gatherRows(tensor: SampleTensor, indices: ArrayLike<number>): SampleValues {
  const size = sampleSize(tensor.sampleShape);
  const source = tensor.values;
  const rows = new (source.constructor as new (length: number) => SampleValues)(indices.length * size);
  for (let position = 0; position < indices.length; position++) {
    const sample = indices[position] as number;
    rows.set(source.subarray(sample * size, (sample + 1) * size), position * size);
  }
  return rows;
}

/**
 * The model batch of `raw`. With `buffers` (at least as long as the batch needs) the batch is written
 * into views of them instead of new arrays, so a loop that reuses them allocates nothing; values already
 * in the right dtype are used as they are, without a copy.
 */
export function toSampleBatch(
  raw: RawSamples,
  conversion: BatchConversion,
  buffers?: { readonly features: Float32Array | Int32Array; readonly labels: Float32Array | Int32Array },
): SampleBatch {
  return {
    count: raw.count,
    features: converted(raw.features, conversion.featureDtype, conversion.featureDivisor, buffers?.features),
    labels: converted(raw.labels, conversion.labelDtype, undefined, buffers?.labels),
    keys: raw.keys,
  };
}

function converted(
  values: SampleValues,
  dtype: 'float32' | 'int32',
  divisor: number | undefined,
  buffer: Float32Array | Int32Array | undefined,
): Float32Array | Int32Array {
  const scaled = divisor !== undefined && values instanceof Uint8Array;
  if (!scaled && dtypeOf(values) === dtype) return values as Float32Array | Int32Array;
  if (buffer !== undefined && (buffer.length < values.length || dtypeOf(buffer) !== dtype)) {
    throw new CallosumError(
      ErrorCodes.SHAPE_MISMATCH,
      `batch buffer holds ${buffer.length} ${dtypeOf(buffer)} values, the batch needs ${values.length} ${dtype}`,
    );
  }
  const into =
    buffer?.subarray(0, values.length) ??
    (dtype === 'float32' ? new Float32Array(values.length) : new Int32Array(values.length));
  if (scaled) {
    for (let i = 0; i < values.length; i++) into[i] = (values[i] as number) / divisor;
  } else {
    into.set(values);
  }
  return into;
}

/** Buffers for batches of up to `samples` samples of `set`, for toSampleBatch to write into. */
export function batchBuffers(
  set: SampleSet,
  samples: number,
  conversion: BatchConversion,
): { features: Float32Array | Int32Array; labels: Float32Array | Int32Array } {
  const allocate = (dtype: 'float32' | 'int32', length: number) =>
    dtype === 'float32' ? new Float32Array(length) : new Int32Array(length);
  return {
    features: allocate(conversion.featureDtype, samples * sampleSize(set.features.sampleShape)),
    labels: allocate(conversion.labelDtype, samples * sampleSize(set.labels.sampleShape)),
  };
}

/** Samples [start, end) of `batch`, as views (no copy). */
export function sliceBatch(batch: SampleBatch, start: number, end: number): SampleBatch {
  const featuresPerSample = batch.count === 0 ? 0 : batch.features.length / batch.count;
  const labelsPerSample = batch.count === 0 ? 0 : batch.labels.length / batch.count;
  return {
    features: batch.features.subarray(start * featuresPerSample, end * featuresPerSample),
    labels: batch.labels.subarray(start * labelsPerSample, end * labelsPerSample),
    keys: batch.keys?.subarray(start, end),
    count: end - start,
  };
}
