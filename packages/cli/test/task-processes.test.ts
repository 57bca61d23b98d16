import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  lastJsonLine,
  runCli,
  startCoordinatorProcess,
  temporaryDirectory,
  trainingUntil,
} from './processes.js';

// A task module's run with the coordinator and the workers as separate processes, each loading the
// module from its own file system; a worker whose module builds another model is refused.
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/tasks/${name}`, import.meta.url));
const TASK = fixture('regression-task.mjs');

describe('callosum coordinator --task with callosum worker --task processes', () => {
  it('trains with two workers that load the task, and refuses one whose task has a wider layer, naming the difference', async () => {
    const coordinator = await startCoordinatorProcess([
      '--task',
      TASK,
      '--port',
      '0',
      '--min-workers',
      '2',
      '--out',
      await temporaryDirectory('task-processes'),
      '--json',
    ]);
    const worker = (name: string, task: string) =>
      runCli(['worker', '--connect', coordinator.url, '--task', task, '--name', name, '--threads', '1']);
    const refused = await worker('wider', fixture('regression-wider.mjs'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /TASK_MISMATCH: the worker's task differs from the run's: layers\[1\]\.config\.units: 32 on the coordinator, 48 on the worker/,
    );
    const [first, second] = await Promise.all([worker('first', TASK), worker('second', TASK)]);
    const finished = await coordinator.finished;

    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stderr).toMatch(/worker .*wider.* refused: the worker's task differs/);
    expect(lastJsonLine(finished)).toMatchObject({
      steps: 16,
      workers: 2,
      testMetrics: { mae: expect.any(Number) },
    });
    expect(lastJsonLine(finished)).not.toHaveProperty('testAccuracy');
    for (const run of [first, second]) expect(run.code, run.stderr).toBe(0);
  }, 120_000);
});

describe('resuming a finished task run', () => {
  it('reports its stored summary, without an accuracy the task never measured, given the same task only', async () => {
    const out = await temporaryDirectory('task-resume');
    const args = ['train', '--task', TASK, '--workers', '1', '--threads', '1', '--steps', '4'];
    expect((await runCli([...args, '--out', out])).code).toBe(0);
    const resumed = await runCli([...args, '--resume', out]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/already complete/);
    expect(resumed.stdout).toMatch(/test loss\s+\d\.\d{4}/);
    expect(resumed.stdout).toMatch(/test mae\s+\d/);
    expect(resumed.stdout).not.toMatch(/accuracy/);

    // Another task, or none, is refused as for a run not yet finished, by both commands that resume.
    const other = fixture('regression-wider.mjs');
    for (const command of ['train', 'coordinator']) {
      const refused = await runCli([command, '--task', other, '--resume', out]);
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toContain(
        'INVALID_ARGUMENT: this run trains task regression-task, not task regression-wider',
      );
      expect(refused.stdout).toBe('');
    }
    const withoutTask = await runCli(['train', '--resume', out]);
    expect(withoutTask.code).toBe(1);
    expect(withoutTask.stderr).toContain(
      "this run trains task regression-task: resume it with --task and that task's module",
    );
  }, 60_000);
});

describe('resuming a stopped task run', () => {
  it('refuses a task module that has changed since the run started, even with the same name and weights', async () => {
    const out = await temporaryDirectory('task-changed');
    const task = fixture('broken-classifier.mjs');
    const args = ['train', '--task', task, '--workers', '1', '--threads', '1', '--epochs', '500'];
    const run = await trainingUntil([...args, '--checkpoint-every', '2', '--out', out], out, 4);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(1);
    const resumed = await runCli([...args, '--resume', out], {
      env: { BROKEN_TASK_DEFECT: 'changed-model' },
    });
    expect(resumed.code).toBe(1);
    expect(resumed.stderr).toMatch(
      /INVALID_ARGUMENT: task broken-classifier has changed since this run started .*resume it with the module it started with/,
    );
    // With the module it started with, it resumes.
    const continued = await runCli([...args, '--resume', out, '--steps', '1']);
    expect(continued.code, continued.stderr).toBe(0);
  }, 90_000);
});
