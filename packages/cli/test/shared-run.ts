import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inject } from 'vitest';
import { type Finished, runCli, shortRun } from './processes.js';

export interface FinishedShortRun {
  readonly runDir: string;
  readonly tracePath: string;
  /** What `callosum train … --trace … --json` printed and how it exited. */
  readonly output: Finished;
}

/**
 * One finished short run (shortRun with --trace and --json) that the files which only read a finished
 * run share, instead of each training its own. The first file to ask trains it; the files run one at a
 * time (vitest.config.ts), so the later ones find it.
 */
export async function finishedShortRun(): Promise<FinishedShortRun> {
  const runDir = join(inject('sharedRunRoot'), 'short-run');
  const tracePath = join(runDir, 'trace.json');
  const outputFile = join(inject('sharedRunRoot'), 'short-run-output.json');
  const stored = await readFile(outputFile, 'utf8').catch(() => undefined);
  if (stored !== undefined) return { runDir, tracePath, output: JSON.parse(stored) as Finished };
  await mkdir(runDir, { recursive: true });
  const output = await runCli(['train', ...shortRun(), '--out', runDir, '--trace', tracePath, '--json'], {
    timeoutMs: 300_000,
  });
  await writeFile(outputFile, JSON.stringify(output));
  return { runDir, tracePath, output };
}
