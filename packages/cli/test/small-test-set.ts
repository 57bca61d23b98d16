import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { embeddedMnistDir, encodeIdx, readIdxFile } from '@callosum/core';
import type { TestProject } from 'vitest/node';

/** Test images kept: the closing evaluation of a short run takes a tenth of the time of all 10,000. */
export const SMALL_TEST_SET_SIZE = 1_000;

declare module 'vitest' {
  export interface ProvidedContext {
    /** A `--data` directory: the real MNIST training set and the first 1,000 of its test images. */
    smallTestSetDir: string;
  }
}

/**
 * Vitest global setup: writes the data directory the process tests train on. They are about
 * behaviour (resume, signals, faults, the run directory), not accuracy, and every run ends with an
 * evaluation that is half of a short run's time on the full test set. train-cli.test.ts, which checks
 * the accuracy the README promises, keeps the full test set.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const source = embeddedMnistDir();
  const dir = await mkdtemp(join(tmpdir(), 'callosum-small-test-set-'));
  for (const name of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte']) {
    await symlink(join(source, name), join(dir, name));
  }
  for (const name of ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) {
    const { dims, data } = await readIdxFile(join(source, name));
    const sampleSize = data.length / (dims[0] as number);
    const kept = {
      dims: [SMALL_TEST_SET_SIZE, ...dims.slice(1)],
      data: data.subarray(0, SMALL_TEST_SET_SIZE * sampleSize),
    };
    await writeFile(join(dir, name), encodeIdx(kept));
  }
  project.provide('smallTestSetDir', dir);
  return () => rm(dir, { recursive: true, force: true });
}
