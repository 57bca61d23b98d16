import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { lastJsonLine, runCli, temporaryDirectory } from './processes.js';

// A bad task module stops `callosum train` at once, before any worker could wait for work, with one
// line that names what is wrong. Real CLI processes; the task modules are in fixtures/tasks.
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/tasks/${name}`, import.meta.url));

/** `callosum worker` processes still running for this module (a worker left hanging). */
function workersOf(module: string): string[] {
  const lines = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n');
  return lines.filter((line) => line.includes(' worker ') && line.includes(module));
}

async function trainBroken(module: string, defect?: string, extra: string[] = []) {
  const run = await runCli(
    [
      'train',
      '--task',
      module,
      '--workers',
      '2',
      '--steps',
      '2',
      '--out',
      await temporaryDirectory('bad-task'),
      ...extra,
    ],
    { timeoutMs: 60_000, env: defect === undefined ? {} : { BROKEN_TASK_DEFECT: defect } },
  );
  expect(run.signal, 'the run ended by itself').toBeNull();
  expect(run.code).not.toBe(0);
  expect(workersOf(module)).toEqual([]);
  return run.stderr;
}

describe('a bad task module', () => {
  it("without a default export is named, with what to write instead (also on --json's last line)", async () => {
    const module = fixture('no-default-export.mjs');
    expect(await trainBroken(module)).toMatch(
      /TASK_INVALID: task module .*no-default-export\.mjs has no default export; it must `export default defineTask/,
    );
    const json = await runCli(['train', '--task', module, '--json'], { timeoutMs: 60_000 });
    expect(lastJsonLine(json)).toEqual({
      error: { code: 'TASK_INVALID', message: expect.stringContaining('has no default export') },
    });
  });

  it('with a syntax error is refused naming the line, in the module or in one it imports', async () => {
    // Written here rather than kept as fixtures: the linter would refuse to parse them.
    const dir = await temporaryDirectory('syntax');
    const broken = join(dir, 'broken.mjs');
    await writeFile(broken, 'const a = 1;\nfoo(1, 2;\nexport default a;\n');
    const importing = join(dir, 'importing.mjs');
    await writeFile(importing, "import './broken.mjs';\nexport default 1;\n");
    expect(await trainBroken(broken)).toContain(
      `TASK_INVALID: task module ${broken} cannot be loaded: missing ) after argument list (at ${broken}:2: foo(1, 2;)`,
    );
    expect(await trainBroken(importing)).toContain(
      `TASK_INVALID: task module ${importing} cannot be loaded: missing ) after argument list (the file parses: the error is in a module it imports, which \`node --check <file>\` finds, or was thrown while it ran)`,
    );
  });

  it('whose top-level await never settles stops the command with exit 1, saying why (Node would exit with 0)', async () => {
    const module = fixture('never-imports.mjs');
    for (const command of [
      ['train', '--workers', '2', '--json'],
      ['worker', '--connect', 'ws://127.0.0.1:1'],
    ]) {
      const run = await runCli([...command, '--task', module], { timeoutMs: 60_000 });
      expect([run.code, run.signal], run.stderr).toEqual([1, null]);
      expect(run.stderr).toContain(
        'callosum: stopped: the command was waiting for something that can never happen, with nothing else left to run',
      );
      // --json's last line says so too.
      if (command.includes('--json')) {
        expect(lastJsonLine<{ error: { code: string } }>(run).error.code).toBe('TASK_INVALID');
      }
    }
  });

  it('whose loss does not give one value per sample is refused before training, naming the loss and the split', async () => {
    const stderr = await trainBroken(fixture('broken-classifier.mjs'), 'mean-loss');
    // Before, every worker failed step 1 five times over, and the run stopped with COMPUTE_FAILED.
    expect(stderr.trim().split('\n').at(-1)).toBe(
      'callosum: TASK_INVALID: task broken-classifier: loss meanLoss must give one value per sample (shape [2]), gave shape [] ' +
        '(a training step over 2 samples of the train data, before training)',
    );
    expect(stderr).not.toMatch(/step 1/);
  });

  it("whose model factory throws is named, with the factory's own message", async () => {
    expect(await trainBroken(fixture('broken-classifier.mjs'), 'factory-throws')).toMatch(
      /TASK_INVALID: task broken-classifier: its model factory threw: this factory has no model today/,
    );
  });

  it.each([
    [
      'float-labels',
      /train data: label 5 is 0\.5; sparseCategoricalCrossentropy takes class indices, integers in 0\.\.2/,
    ],
    [
      'label-out-of-range',
      /train data: label 7 is 3; sparseCategoricalCrossentropy takes class indices, integers in 0\.\.2 for a model with 3 outputs/,
    ],
    [
      'wrong-feature-shape',
      /train data: features of shape \[5\] per sample do not fit the model's input \[4\]/,
    ],
    ['nan-features', /train data: features of sample 3 hold NaN/],
  ])('with %s is refused before training', async (defect, message) => {
    expect(await trainBroken(fixture('broken-classifier.mjs'), defect)).toMatch(message);
  });

  // The coordinator tries the passes on two samples before the first step, so no worker waits for work.
  it('with a BatchNormalization layer applied twice is refused by --batch-norm sync before training', async () => {
    const stderr = await trainBroken(fixture('broken-classifier.mjs'), 'shared-norm', [
      '--batch-norm',
      'sync',
    ]);
    expect(stderr).toMatch(
      /TASK_INVALID: BatchNormalization layer shared_norm is applied more than once; synchronised BatchNormalization cannot train it \(use --batch-norm local\)/,
    );
    expect(stderr).not.toMatch(/joined/);
  });

  it('whose metric comes out NaN stops the run as diverged, never sending or applying it', async () => {
    const stderr = await trainBroken(fixture('broken-classifier.mjs'), 'nan-metric');
    expect(stderr).toMatch(/NON_FINITE: step 1: metric 0 is NaN/);
    expect(stderr).toMatch(/TRAINING_DIVERGED: training diverged at step 1/);
    // Before any update the learning rate cannot be the cause, and the reason says so.
    expect(stderr).toMatch(
      /at the first step, with the initial weights: look at the data .* not the learning rate/,
    );
  });

  // Each worker's compute fails, and with it the `reduce` announced alongside: no failure of its own.
  it('in a ring run, whose metric comes out NaN stops the run as diverged, logging no failure of a reduction given up', async () => {
    const stderr = await trainBroken(fixture('broken-classifier.mjs'), 'nan-metric', ['--topology', 'ring']);
    const reported = stderr.match(/coordinator: worker .* reports NON_FINITE: step 1: metric 0 is NaN/g);
    expect(reported?.length).toBeGreaterThanOrEqual(2);
    // Nor does a worker: it skips the `reduce` its failure gave up (its last lines are shown).
    expect(stderr).not.toMatch(/STALE_MESSAGE/);
    expect(stderr).toMatch(/worker worker-\d: NON_FINITE: step 1: metric 0 is NaN/);
    expect(stderr).toMatch(/TRAINING_DIVERGED: training diverged at step 1/);
  });
});
