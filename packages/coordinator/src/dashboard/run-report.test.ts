import { mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { isCallosumError } from '@callosum/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_FILE, RunFiles } from '../run/run-directory.js';
import { writeRunReport } from './run-report.js';

// Real directories laid out as a run's: writeRunReport must never write its HTML over any of the run's
// own files (the CLI's report.test.ts drives `callosum report` itself).
const METRICS_LINE =
  '{"time":"2026-12-06T00:00:00.000Z","type":"worker-joined","worker":"w1","name":"vm:1","address":"127.0.0.1:1","backend":"wasm","healthy":1}\n';

let root: string;
let runDir: string;
/** Where the run's files really are (symbolic links followed): the refusals name these. */
let realRun: string;
const RUN_FILES: Record<string, string> = {
  [RunFiles.METRICS]: METRICS_LINE,
  [RunFiles.SUMMARY]: '{"steps":1}\n',
  [RunFiles.MARKER]: '{"format":1}\n',
  [LOCK_FILE]: '{"pid":1,"host":"h"}\n',
  'checkpoints/step-000000200.ckpt': 'checkpoint bytes',
  'model/model.json': '{}',
  'model/weights.bin': 'weights',
  'replaced-2026-12-06T00-00-00-000Z/metrics.jsonl': METRICS_LINE,
  'replaced-2026-12-06T00-00-00-000Z/checkpoints/step-000000100.ckpt': 'older checkpoint',
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'callosum-run-report-'));
  runDir = join(root, 'run');
  for (const [name, content] of Object.entries(RUN_FILES)) {
    await mkdir(join(runDir, name, '..'), { recursive: true });
    await writeFile(join(runDir, name), content);
  }
  realRun = await realpath(runDir);
});

afterAll(() => rm(root, { recursive: true, force: true }));

async function runFiles(): Promise<Record<string, string>> {
  const names = Object.keys(RUN_FILES);
  const contents = await Promise.all(names.map((name) => readFile(join(runDir, name), 'utf8')));
  return Object.fromEntries(names.map((name, index) => [name, contents[index] as string]));
}

async function refusal(out: string, dir = runDir): Promise<string> {
  const error = await writeRunReport({ runDir: dir, out }).then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(isCallosumError(error, 'INVALID_ARGUMENT'), `${out}: ${String(error)}`).toBe(true);
  return (error as Error).message;
}

describe('writeRunReport refuses to replace what the run wrote', () => {
  it("names each of the run's own files, and its checkpoints/ and model/ directories and what is in them", async () => {
    const byDefault = `(by default ${join(runDir, 'report.html')})`;
    for (const name of [RunFiles.METRICS, RunFiles.SUMMARY, RunFiles.MARKER, LOCK_FILE]) {
      const out = join(runDir, name);
      expect(await refusal(out)).toBe(
        `cannot write the report to ${out}: that is the run's ${name} (${join(realRun, name)}), which the ` +
          `report would replace; write it to another file ${byDefault}`,
      );
    }
    for (const name of [RunFiles.CHECKPOINTS, RunFiles.MODEL]) {
      const directory = join(runDir, name);
      expect(await refusal(directory)).toBe(
        `cannot write the report to ${directory}: that is the run's ${name} directory (${join(realRun, name)}); ` +
          `write it to another file ${byDefault}`,
      );
      // A file there already, or a new one.
      for (const file of name === RunFiles.MODEL ? ['model.json', 'report.html'] : ['step-000000200.ckpt']) {
        expect(await refusal(join(directory, file))).toBe(
          `cannot write the report to ${join(directory, file)}: that is in the run's ${name} directory ` +
            `(${join(realRun, name)}), which holds the run's own files only; write it to another file ${byDefault}`,
        );
      }
    }
    expect(await runFiles()).toEqual(RUN_FILES);
  });

  it('resolves relative paths, `..` and symbolic links, of the output and of the run directory', async () => {
    const viaParent = `${runDir}/checkpoints/../${RunFiles.METRICS}`;
    expect(await refusal(viaParent)).toMatch(/: that is the run's metrics\.jsonl \(/);
    const relativeOut = relative(process.cwd(), join(runDir, RunFiles.METRICS));
    expect(await refusal(relativeOut)).toMatch(/: that is the run's metrics\.jsonl \(/);
    expect(await refusal(`./${relative(process.cwd(), runDir)}/../run/summary.json`)).toMatch(
      /: that is the run's summary\.json \(/,
    );

    // A link to the checkpoints directory, and the run directory given through a link.
    const links = await mkdtemp(join(tmpdir(), 'callosum-run-report-links-'));
    try {
      await symlink(join(runDir, RunFiles.CHECKPOINTS), join(links, 'checkpoints-link'));
      await symlink(runDir, join(links, 'run-link'));
      expect(await refusal(join(links, 'checkpoints-link', 'step-000000300.ckpt'))).toMatch(
        /: that is in the run's checkpoints directory \(/,
      );
      expect(await refusal(join(runDir, RunFiles.METRICS), join(links, 'run-link'))).toMatch(
        /: that is the run's metrics\.jsonl \(/,
      );
      expect(await refusal(join(links, 'run-link', 'model', 'x.html'))).toMatch(
        /: that is in the run's model directory \(/,
      );
      // `..` after a link leaves the directory it points to, as the kernel takes it: checkpoints-link/..
      // is the run directory (path.resolve would make it the links directory, and let the write through).
      expect(await refusal(`${links}/checkpoints-link/../${RunFiles.METRICS}`)).toBe(
        `cannot write the report to ${links}/checkpoints-link/../${RunFiles.METRICS}: that is the run's ` +
          `${RunFiles.METRICS} (${join(realRun, RunFiles.METRICS)}), which the report would replace; ` +
          `write it to another file (by default ${join(runDir, 'report.html')})`,
      );
      // And the other way: a link in the run directory to a directory outside it, then `..`, writes
      // outside the run (where the kernel puts it), not over the run's file path.resolve names.
      const outside = join(links, 'outside');
      await mkdir(join(outside, 'sub'), { recursive: true });
      await symlink(join(outside, 'sub'), join(runDir, 'outside-link'));
      try {
        const out = `${runDir}/outside-link/../${RunFiles.METRICS}`;
        await expect(writeRunReport({ runDir, out })).resolves.toBe(out);
        expect(await readFile(join(outside, RunFiles.METRICS), 'utf8')).toMatch(/^<!doctype html>/i);
      } finally {
        await rm(join(runDir, 'outside-link'));
      }
      // A link named as the output is what the write replaces, not what it points to: allowed.
      await symlink(join(runDir, RunFiles.METRICS), join(links, 'metrics-link.html'));
      await writeRunReport({ runDir, out: join(links, 'metrics-link.html') });
      expect(await readFile(join(links, 'metrics-link.html'), 'utf8')).toMatch(/^<!doctype html>/i);
    } finally {
      await rm(links, { recursive: true, force: true });
    }
    expect(await runFiles()).toEqual(RUN_FILES);
  });

  it('keeps an earlier run moved aside (replaced-<time>/) whole, and writes anywhere else in the run directory', async () => {
    const aside = join(runDir, 'replaced-2026-12-06T00-00-00-000Z');
    expect(await refusal(join(aside, RunFiles.METRICS))).toMatch(
      /: that is the earlier run's metrics\.jsonl \(.*replaced-2026-12-06T00-00-00-000Z\/metrics\.jsonl\)/,
    );
    expect(await refusal(join(aside, 'checkpoints', 'step-000000100.ckpt'))).toMatch(
      /: that is in the earlier run's checkpoints directory \(/,
    );
    expect(await runFiles()).toEqual(RUN_FILES);

    await expect(writeRunReport({ runDir })).resolves.toBe(join(runDir, RunFiles.REPORT));
    await mkdir(join(runDir, 'reports'), { recursive: true });
    for (const out of [
      join(runDir, RunFiles.REPORT),
      join(runDir, 'metrics.html'),
      join(runDir, 'reports', 'metrics.jsonl'),
      join(aside, RunFiles.REPORT),
    ]) {
      await expect(writeRunReport({ runDir, out })).resolves.toBe(out);
      expect(await readFile(out, 'utf8')).toMatch(/^<!doctype html>/i);
    }
    expect(await runFiles()).toEqual(RUN_FILES);
    expect((await readdir(join(runDir, RunFiles.CHECKPOINTS))).sort()).toEqual(['step-000000200.ckpt']);
  });
});

describe('writeRunReport given a metrics.jsonl it cannot read', () => {
  it('names one that is a directory as ARTIFACT_INVALID (it crashed with EISDIR)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'callosum-run-report-eisdir-'));
    try {
      await mkdir(join(dir, RunFiles.METRICS));
      const error = await writeRunReport({ runDir: dir }).catch((failure: unknown) => failure);
      expect(isCallosumError(error, 'ARTIFACT_INVALID'), String(error)).toBe(true);
      expect((error as Error).message).toBe(
        `${join(dir, RunFiles.METRICS)} is a directory: a run's metrics.jsonl is a file`,
      );
      expect(await readdir(dir)).toEqual([RunFiles.METRICS]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
