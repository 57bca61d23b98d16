import { readFile } from 'node:fs/promises';
import { loadMnist } from '@callosum/core';
import * as tfjs from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';
import { serveDirectory } from '../../../tools/serve-directory.js';
import { lastJsonLine, runCli, temporaryDirectory } from './processes.js';

interface Summary {
  testAccuracy: number;
  testLoss: number;
  epochs: number;
  steps: number;
  workers: number;
  samplesPerSecond: number;
  backend: string;
  modelDir: string;
  metricsFile: string;
}

describe('callosum train', () => {
  it('with defaults and 4 workers reaches 98.5% on the real MNIST test set, and plain tfjs reproduces it', async () => {
    const out = await temporaryDirectory('train-defaults');
    const run = await runCli(['train', '--workers', '4', '--out', out, '--json'], { timeoutMs: 900_000 });
    expect(run.code, run.stderr).toBe(0);
    const summary = lastJsonLine<Summary>(run);
    expect(summary.workers).toBe(4);
    expect(summary.backend).toBe('wasm');
    expect(summary.testAccuracy).toBeGreaterThanOrEqual(0.985);

    const metrics = (await readFile(summary.metricsFile, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const steps = metrics.filter((record) => record.type === 'step');
    expect(steps).toHaveLength(summary.steps);
    expect(steps[0].perWorker).toHaveLength(4);
    expect(Object.keys(steps[0].perWorker[0]).sort()).toEqual([
      'computeMs',
      'id',
      'samples',
      'transferMs',
      'waitMs',
    ]);
    expect(steps.every((step: { learningRate: number }) => step.learningRate > 0)).toBe(true);

    // Plain @tensorflow/tfjs (no Callosum code) loads the saved model and scores the same test set, on
    // tfjs's own wasm backend (its pure-JavaScript cpu backend takes five times as long). The workers
    // compute on wasm too, but through Callosum's kernels and flat weights, not this model file.
    expect(await tfjs.setBackend('wasm')).toBe(true);
    const server = await serveDirectory(summary.modelDir);
    try {
      const model = await tfjs.loadLayersModel(`${server.url}/model.json`);
      const { test } = await loadMnist();
      let correct = 0;
      for (let start = 0; start < test.count; start += 1000) {
        const predicted = tfjs.tidy(() => {
          const pixels = Float32Array.from(
            test.images.subarray(start * 784, (start + 1000) * 784),
            (v) => v / 255,
          );
          return tfjs
            .argMax(model.predict(tfjs.tensor4d(pixels, [1000, 28, 28, 1])) as tfjs.Tensor, 1)
            .dataSync();
        });
        predicted.forEach((label, i) => {
          if (label === test.labels[start + i]) correct += 1;
        });
      }
      expect(correct / test.count).toBeCloseTo(summary.testAccuracy, 3);
    } finally {
      await server.close();
    }
  }, 900_000);

  it('rejects bad flags with a message naming the flag', async () => {
    const zero = await runCli(['train', '--workers', '0']);
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toMatch(/--workers.*expected an integer from 1/);
    const model = await runCli(['train', '--model', 'resnet']);
    expect(model.code).not.toBe(0);
    expect(model.stderr).toMatch(/--model.*resnet.*cnn/s);
    const fromEnv = await runCli(['train'], { env: { CALLOSUM_BATCH_SIZE: 'lots' } });
    expect(fromEnv.code).not.toBe(0);
    expect(fromEnv.stderr).toMatch(/batch-size.*"lots"/);
  });
});
