import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { defineTask, taskFromDefinition, trainLocal } from './index.js';
import * as tf from './tf.js';

describe('tensor methods, as @tensorflow/tfjs has them', () => {
  it('call their ops: same-name ones, and those that reshape, cast or move the tensor', () => {
    tf.tidy(() => {
      const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
      expect(Array.from(x.mean().dataSync())).toEqual([2.5]);
      expect(Array.from(x.div(2).dataSync())).toEqual([0.5, 1, 1.5, 2]);
      expect(x.sum(1).shape).toEqual([2]);
      expect(x.flatten().shape).toEqual([4]);
      expect(x.asType('int32').dtype).toBe('int32');
      expect(x.concat(x, 0).shape).toEqual([4, 2]);
      expect(x.stack([x, x]).shape).toEqual([3, 2, 2]);
      const mask = tf.tensor2d([1, 0, 0, 1], [2, 2], 'bool');
      expect(Array.from(x.where(mask, tf.zerosLike(x)).dataSync())).toEqual([1, 0, 0, 4]);
      expect(() => x.asScalar()).toThrow(/only 1 element/);
    });
  });

  it('refuse a disposed tensor', () => {
    const x = tf.tensor1d([1, 2]);
    x.dispose();
    expect(() => x.mean()).toThrow(/disposed/);
  });

  it('let an LSTM, whose orthogonal initializer calls flatten, be built and trained', async () => {
    const samples = 16;
    const definition = defineTask({
      model: ({ seed }) =>
        tf.sequential({
          layers: [
            tf.layers.lstm({
              inputShape: [5, 2],
              units: 4,
              kernelInitializer: tf.initializers.glorotUniform({ seed }),
              recurrentInitializer: tf.initializers.orthogonal({ seed }),
            }),
            tf.layers.dense({
              units: 2,
              activation: 'softmax',
              kernelInitializer: tf.initializers.glorotUniform({ seed }),
            }),
          ],
        }),
      data: () => ({
        train: {
          xs: tf.randomUniform([samples, 5, 2], 0, 1, 'float32', 3),
          ys: tf.tensor1d(
            Array.from({ length: samples }, (_, i) => i % 2),
            'int32',
          ),
        },
      }),
      loss: 'sparseCategoricalCrossentropy',
    });
    const result = await trainLocal({
      task: taskFromDefinition(definition, 'lstm'),
      backend: 'wasm',
      batchSize: 8,
      maxSteps: 2,
      evaluate: false,
    });
    expect(result.steps).toBe(2);
    expect(result.weights.every(Number.isFinite)).toBe(true);
  });

  // core's own typecheck sees the methods through its dev dependency @tensorflow/tfjs; a program that
  // installs only @callosum/core sees what core's emitted .d.ts files declare (built by `pnpm build`).
  it('are declared in the published types, for a program that depends on @callosum/core alone', async () => {
    const consumer = await mkdtemp(join(tmpdir(), 'callosum-types-'));
    try {
      const coreDir = join(dirname(fileURLToPath(import.meta.url)), '..');
      await mkdir(join(consumer, 'node_modules', '@callosum'), { recursive: true });
      await symlink(coreDir, join(consumer, 'node_modules', '@callosum', 'core'), 'dir');
      await writeFile(join(consumer, 'package.json'), '{"type": "module"}');
      const main = join(consumer, 'main.ts');
      await writeFile(
        main,
        [
          "import { tf } from '@callosum/core';",
          'const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);',
          'const scaled: tf.Tensor = x.div(255).flatten();',
          'const missing = x.notATensorMethod();',
          'export { scaled, missing };',
        ].join('\n'),
      );
      const program = ts.createProgram([main], {
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        target: ts.ScriptTarget.ES2022,
        strict: true,
        noEmit: true,
        // tfjs's own declarations do not pass a full check (hash_util.d.ts names an undeclared Long).
        skipLibCheck: true,
        types: [],
      });
      const errors = ts
        .getPreEmitDiagnostics(program)
        .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      // The one error is the made-up method: the check does see the tensor's type.
      expect(errors).toEqual(["Property 'notATensorMethod' does not exist on type 'Tensor2D'."]);
    } finally {
      await rm(consumer, { recursive: true, force: true });
    }
  }, 60_000);
});
