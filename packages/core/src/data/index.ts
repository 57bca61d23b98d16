export { sampleSetDigest } from './digest.js';
export { decodeIdx, encodeIdx, type IdxArray, type IdxReadOptions, readIdxFile } from './idx.js';
export {
  type DatasetSource,
  datasetFrom,
  embeddedMnistDir,
  type ImageSet,
  type LoadMnistOptions,
  loadMnist,
  MNIST_CLASS_COUNT,
  type MnistDataset,
} from './mnist.js';
export { EpochSampler, type EpochSamplerOptions, type SamplerPosition } from './sampler.js';
export {
  type BatchConversion,
  batchBuffers,
  gatherSamples,
  type RawSamples,
  type SampleBatch,
  type SampleDtype,
  type SampleSet,
  type SampleTensor,
  type SampleValues,
  sliceBatch,
  sliceSampleSet,
  toSampleBatch,
} from './samples.js';
export {
  cutIntoShards,
  evenShardRanges,
  evenShardSizes,
  proportionalShardSizes,
  type ShardRange,
  type Sliceable,
} from './shards.js';
