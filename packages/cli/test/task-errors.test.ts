import { execFileSync, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLI_ENTRY, lastJsonLine, runCli, temporaryDirectory } from './processes.js';

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

  it('whose top-level await never settles while a timer keeps the process alive says it is still importing', async () => {
    const module = fixture('never-imports-ticking.mjs');
    const child = spawn(process.execPath, [CLI_ENTRY, 'train', '--workers', '2', '--task', module], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    // The first progress line comes 15 s into the import; on a busy machine, start-up adds to that.
    const said = await new Promise<boolean>((resolve) => {
      const limit = setTimeout(() => resolve(false), 90_000);
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (!stderr.includes('still importing')) return;
        clearTimeout(limit);
        resolve(true);
      });
    });
    child.kill('SIGKILL');
    expect(said, stderr).toBe(true);
    expect(stderr).toContain(
      `callosum: still importing task module ${module} (15 s): its top-level code has not finished`,
    );
  }, 120_000);

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

  it('whose loss comes out NaN stops the run as diverged, never sending or applying it', async () => {
    const stderr = await trainBroken(fixture('broken-classifier.mjs'), 'nan-loss');
    expect(stderr).toMatch(/NON_FINITE: step 1: loss is NaN/);
    expect(stderr).toMatch(/TRAINING_DIVERGED: training diverged at step 1/);
    // Before any update the learning rate cannot be the cause, and the reason says so.
    expect(stderr).toMatch(
      /at the first step, with the initial weights: look at the data .* not the learning rate/,
    );
  });

  // Each worker's compute fails, and with it the `reduce` announced alongside: no failure of its own.
  it('in a ring run, whose loss comes out NaN stops the run as diverged, logging no failure of a reduction given up', async () => {
    const stderr = await trainBroken(fixture('broken-classifier.mjs'), 'nan-loss', ['--topology', 'ring']);
    const reported = stderr.match(/coordinator: worker .* reports NON_FINITE: step 1: loss is NaN/g);
    expect(reported?.length).toBeGreaterThanOrEqual(2);
    // Nor does a worker: it skips the `reduce` its failure gave up (its last lines are shown).
    expect(stderr).not.toMatch(/STALE_MESSAGE/);
    expect(stderr).toMatch(/worker worker-\d: NON_FINITE: step 1: loss is NaN/);
    expect(stderr).toMatch(/TRAINING_DIVERGED: training diverged at step 1/);
  });
});

// A metric is reported whatever it is, as Keras and PyTorch report it: NaN or Infinity never stops a run
// (before, the workers refused to send it, and the run stopped as diverged or with COMPUTE_FAILED).
describe('a metric that is NaN or Infinity', () => {
  interface Line {
    type: string;
    metrics?: Record<string, number | null>;
    testMetrics?: Record<string, number | null>;
  }

  it.each(['star', 'ring'])(
    'is reported as it is in a %s run, which trains to the end: NaN/Infinity on the terminal, null in JSON',
    async (topology) => {
      const module = fixture('relative-error.mjs');
      const runDir = await temporaryDirectory('metric-nan');
      const run = await runCli(
        ['train', '--task', module, '--workers', '2', '--topology', topology, '--out', runDir],
        { timeoutMs: 120_000 },
      );
      expect(run.code, run.stderr).toBe(0);
      // relErr is Infinity on the test set (a label 0); mae is a figure.
      expect(run.stderr).toMatch(
        /epoch 1, step 4: test loss \d+\.\d{4}, test mae \d\.\d+, test relErr Infinity\n/,
      );
      expect(run.stdout).toMatch(/\n {2}test relErr +Infinity\n/);
      expect(run.stdout).toMatch(/\n {2}test mae +\d\.\d+\n/);
      expect(run.stderr).not.toMatch(/NON_FINITE|DIVERGED|failed/);

      // JSON has no NaN or Infinity: metrics.jsonl and summary.json hold null for them.
      const lines = (await readFile(join(runDir, 'metrics.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Line);
      const steps = lines.filter((line) => line.type === 'step');
      expect(steps).toHaveLength(8);
      // The training batch holding the sample [0, 0, 0] → 0, one of each epoch's 4: NaN (0 / 0).
      expect(steps.filter((step) => step.metrics?.relErr === null)).toHaveLength(2);
      expect(steps.every((step) => typeof step.metrics?.mae === 'number')).toBe(true);
      const evaluations = lines.filter((line) => line.type === 'evaluation');
      expect(evaluations.map((evaluation) => evaluation.testMetrics)).toEqual([
        { mae: expect.any(Number), relErr: null },
        { mae: expect.any(Number), relErr: null },
      ]);
      const summary = JSON.parse(await readFile(join(runDir, 'summary.json'), 'utf8')) as Line;
      expect(summary.testMetrics).toEqual({ mae: expect.any(Number), relErr: null });
      if (topology === 'ring') return;

      // The readers of those files take the null: the finished run's stored summary, and the report.
      const resumed = await runCli(['train', '--task', module, '--resume', runDir, '--json']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(lastJsonLine<Line>(resumed).testMetrics).toEqual({ mae: expect.any(Number), relErr: null });
      const report = await runCli(['report', runDir]);
      expect(report.code, report.stderr).toBe(0);
    },
    240_000,
  );
});
