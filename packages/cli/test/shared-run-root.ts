import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Where the finished run that several files share lives (shared-run.ts). */
    sharedRunRoot: string;
  }
}

/** Vitest global setup: the directory of the shared finished run, removed after the test run. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = await mkdtemp(join(tmpdir(), 'callosum-shared-run-'));
  project.provide('sharedRunRoot', root);
  return () => rm(root, { recursive: true, force: true });
}
