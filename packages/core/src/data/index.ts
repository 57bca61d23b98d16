export { batchFromBytes, type ImageBatch, sliceImageBatch } from './batch.js';
export { decodeIdx, encodeIdx, type IdxArray, type IdxReadOptions, readIdxFile } from './idx.js';
export {
  type DatasetSource,
  datasetFrom,
  embeddedMnistDir,
  gatherBatch,
  gatherBytes,
  type ImageSet,
  type LoadMnistOptions,
  loadMnist,
  MNIST_CLASS_COUNT,
  type MnistDataset,
  type SampleBytes,
} from './mnist.js';
export { EpochSampler, type EpochSamplerOptions, type SamplerPosition } from './sampler.js';
export {
  cutIntoShards,
  evenShardRanges,
  evenShardSizes,
  proportionalShardSizes,
  type ShardRange,
  type Sliceable,
} from './shards.js';
