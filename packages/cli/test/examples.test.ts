import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type DefinedTask, initBackend, loadModel, type TaskArray, tf } from '@callosum/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { lastJsonLine, runCli, temporaryDirectory } from './processes.js';

// Each example task trains briefly through `callosum train --task … --workers 2`, and its saved model,
// loaded and evaluated by plain tfjs (model.compile + model.evaluate) on the task's own test set,
// reproduces the loss and accuracy the run reported. Full-length figures: examples/README.md.
const EXAMPLES = ['mnist-cnn', 'spam-assassin', 'coloured-shapes'];
const STEPS = 20;

const modulePath = (example: string) =>
  fileURLToPath(new URL(`../../../examples/${example}/task.mjs`, import.meta.url));

beforeAll(async () => {
  await initBackend('wasm');
});

/** A split's features or labels as a tfjs tensor; labels as float32, which tfjs's own losses need. */
function tensorOf(array: TaskArray, dtype?: 'float32'): tf.Tensor {
  const tensor =
    array instanceof tf.Tensor
      ? array
      : tf.tensor(
          array.values as Float32Array,
          [...array.shape],
          array.values instanceof Float32Array ? 'float32' : 'int32',
        );
  return dtype === undefined || tensor.dtype === dtype ? tensor : tf.cast(tensor, dtype);
}

describe('the example tasks', () => {
  it.each(EXAMPLES)(
    '%s trains on 2 workers, and plain tfjs reproduces its reported test figures from the saved model',
    async (example) => {
      const out = await temporaryDirectory(`example-${example}`);
      const run = await runCli(
        [
          'train',
          '--task',
          modulePath(example),
          '--workers',
          '2',
          '--steps',
          String(STEPS),
          '--out',
          out,
          '--json',
        ],
        { timeoutMs: 150_000 },
      );
      expect(run.code, run.stderr).toBe(0);
      const summary = lastJsonLine<{ steps: number; testLoss: number; testAccuracy: number }>(run);
      expect(summary.steps).toBe(STEPS);

      const task = (await import(pathToFileURL(modulePath(example)).href)).default as DefinedTask;
      const { test } = await task.data();
      if (test === undefined) throw new Error(`${example} has no test split`);
      const model = await loadModel(join(out, 'model'));
      model.compile({ optimizer: 'sgd', loss: task.loss as string, metrics: ['accuracy'] });
      const [loss, accuracy] = (await model.evaluate(tensorOf(test.xs), tensorOf(test.ys, 'float32'), {
        batchSize: 500,
      })) as tf.Scalar[];
      expect(Math.abs((loss?.dataSync()[0] as number) / summary.testLoss - 1)).toBeLessThanOrEqual(1e-4);
      expect(accuracy?.dataSync()[0]).toBeCloseTo(summary.testAccuracy, 4);
      // Twenty steps learn something: better than chance on every example.
      expect(summary.testAccuracy).toBeGreaterThan(0.15);
      model.dispose();
    },
    200_000,
  );
});
