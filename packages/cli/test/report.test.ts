import { execFileSync } from 'node:child_process';
import { appendFile, chmod, cp, mkdir, readdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { artifactPath, launchBrowser, noBrowser } from './browser.js';
import { runCli, SHORT_RUN, temporaryDirectory } from './processes.js';
import { type FinishedShortRun, finishedShortRun } from './shared-run.js';

let run: FinishedShortRun;
beforeAll(async () => {
  run = await finishedShortRun();
}, 300_000);

describe('callosum report', () => {
  it('writes one HTML file for a finished run, whose charts headless Chromium renders without any network request', async (context) => {
    const { runDir, output: train } = run;
    expect(train.code, train.stderr).toBe(0);
    // `callosum train` says where its dashboard was, once (with a query that may carry the token).
    expect(
      train.stderr.match(/^coordinator: dashboard at http:\/\/127\.0\.0\.1:\d+\/(\?\S*)?$/gm),
    ).toHaveLength(1);

    const report = await runCli(['report', runDir]);
    expect(report.code, report.stderr).toBe(0);
    const file = join(runDir, 'report.html');
    expect(report.stdout).toBe(`wrote ${file}\n`);
    expect((await readdir(runDir)).filter((name) => name.endsWith('.html'))).toEqual(['report.html']);

    if (noBrowser !== undefined) return context.skip(noBrowser);
    const browser: Browser = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1500 } });
      const requests: string[] = [];
      page.on('request', (request) => requests.push(request.url()));
      // A blocked load (the page's content security policy) shows as a console error, not a request.
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(message.text());
      });
      const url = pathToFileURL(file).href;
      await page.goto(url);
      await page.locator('#status[data-state="finished"]').waitFor();
      for (const chart of ['loss', 'accuracy', 'throughput', 'learning-rate']) {
        expect(await page.locator(`#chart-${chart}`).getAttribute('data-points'), chart).toBe(
          String(SHORT_RUN.steps),
        );
        expect(await page.locator(`#chart-${chart} canvas`).count(), chart).toBe(1);
      }
      expect(await page.locator('#workers tbody tr').count()).toBe(2);
      expect(await page.locator('#timeline rect').count()).toBeGreaterThan(0);
      expect(await page.locator('#events li[data-kind="summary"]').count()).toBe(1);
      await page.screenshot({ path: await artifactPath('report.png'), fullPage: true });
      // The file itself, and nothing else: no script, style, font or data from anywhere.
      expect(requests).toEqual([url]);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  it('names a missing or corrupt metrics.jsonl', async () => {
    const empty = await temporaryDirectory('report-empty');
    const missing = await runCli(['report', empty]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `callosum: INVALID_ARGUMENT: ${join(empty, 'metrics.jsonl')} does not exist: not a run directory?\n`,
    );

    // Given a file of the run (its metrics.jsonl, say) instead of the run's directory.
    const file = await runCli(['report', join(run.runDir, 'metrics.jsonl')]);
    expect(file.code).toBe(1);
    expect(file.stderr).toBe(
      `callosum: INVALID_ARGUMENT: ${join(run.runDir, 'metrics.jsonl')} is a file, not a run directory: give the directory that holds metrics.jsonl\n`,
    );

    await writeFile(join(empty, 'metrics.jsonl'), '');
    const nothing = await runCli(['report', empty]);
    expect(nothing.stderr).toMatch(/^callosum: ARTIFACT_INVALID: .*metrics\.jsonl holds no events\n$/);

    const corrupt = join(empty, 'metrics.jsonl');
    const [first] = (await readFile(join(run.runDir, 'metrics.jsonl'), 'utf8')).split('\n');
    await writeFile(corrupt, `${first}\n{"time":"2026-12-06T00:00:00.000Z","type":"step","step":-1}\n`);
    const bad = await runCli(['report', empty]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^callosum: ARTIFACT_INVALID: .*metrics\.jsonl:2 is not a metrics line \(step: .*\)\n$/,
    );

    // A line cut short by a coordinator killed mid-write is the one line left out.
    await writeFile(corrupt, `${first}\n`);
    await appendFile(corrupt, '{"time":"2026-12-06T00:0');
    const cut = await runCli(['report', empty, '--output', join(empty, 'cut.html')]);
    expect(cut.code, cut.stderr).toBe(0);
    expect(cut.stdout).toBe(`wrote ${join(empty, 'cut.html')}\n`);

    const nowhere = join(empty, 'no-such-dir', 'report.html');
    const unwritable = await runCli(['report', empty, '--output', nowhere]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr).toBe(
      `callosum: INVALID_ARGUMENT: cannot write the report to ${nowhere}: the directory ${join(empty, 'no-such-dir')} does not exist\n`,
    );
  });

  it("refuses an --output that is one of the run's own files, or in its checkpoints/ or model/, however the path is spelled", async () => {
    // A copy of the shared run: a refusal that failed would overwrite what the other tests read.
    const runDir = join(await temporaryDirectory('report-own-files'), 'run');
    await cp(run.runDir, runDir, { recursive: true });
    const [checkpoint] = (await readdir(join(runDir, 'checkpoints'))).filter((name) =>
      name.endsWith('.ckpt'),
    );
    expect(checkpoint).toBeDefined();
    // A previous run moved aside by --overwrite: its report may go there.
    const aside = join(runDir, 'replaced-2026-12-06T00-00-00-000Z');
    await mkdir(aside);
    await cp(join(runDir, 'metrics.jsonl'), join(aside, 'metrics.jsonl'));
    const contents = async (): Promise<Record<string, string>> => {
      const files = ['metrics.jsonl', 'summary.json', 'callosum-run.json', 'model/model.json'];
      files.push(`checkpoints/${checkpoint}`, `${basename(aside)}/metrics.jsonl`);
      const read = await Promise.all(files.map((file) => readFile(join(runDir, file), 'latin1')));
      return Object.fromEntries(files.map((file, index) => [file, read[index] as string]));
    };
    const before = await contents();
    const defaultOut = join(runDir, 'report.html');
    // Where the refusals say the file is: symbolic links followed (macOS's /var is one).
    const realRun = await realpath(runDir);

    const metrics = await runCli(['report', runDir, '--output', join(runDir, 'metrics.jsonl')]);
    expect(metrics.code).toBe(1);
    expect(metrics.stdout).toBe('');
    expect(metrics.stderr).toBe(
      `callosum: INVALID_ARGUMENT: cannot write the report to ${join(runDir, 'metrics.jsonl')}: that is the ` +
        `run's metrics.jsonl (${join(realRun, 'metrics.jsonl')}), which the report would replace; write it to ` +
        `another file (by default ${defaultOut})\n`,
    );
    const inCheckpoints = join(runDir, 'checkpoints', checkpoint as string);
    const ckpt = await runCli(['report', runDir, '--output', inCheckpoints]);
    expect(ckpt.code).toBe(1);
    expect(ckpt.stderr).toBe(
      `callosum: INVALID_ARGUMENT: cannot write the report to ${inCheckpoints}: that is in the run's ` +
        `checkpoints directory (${join(realRun, 'checkpoints')}), which holds the run's own files only; ` +
        `write it to another file (by default ${defaultOut})\n`,
    );

    // Relative, through `..`, with the run directory given relatively too: the same file. (Each of the
    // run's files and directories, symbolic links, and so on: run-report.test.ts in the coordinator.)
    const relativeRun = relative(process.cwd(), runDir);
    for (const [dir, output] of [
      [relativeRun, `./${relativeRun}/../${basename(runDir)}/metrics.jsonl`],
      [runDir, `${runDir}/checkpoints/../summary.json`],
      [runDir, join(runDir, 'model', 'report.html')],
    ] as const) {
      const refusal = await runCli(['report', dir, '--output', output]);
      expect(refusal.code, output).toBe(1);
      expect(refusal.stderr, output).toMatch(
        /^callosum: INVALID_ARGUMENT: cannot write the report to .*: that is (the run's (metrics|summary)\.json|in the run's model directory)/,
      );
    }
    // Given by CALLOSUM_REPORT_OUTPUT, the same.
    const fromEnv = await runCli(['report', runDir], {
      env: { CALLOSUM_REPORT_OUTPUT: join(runDir, 'metrics.jsonl') },
    });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.stderr).toMatch(/that is the run's metrics\.jsonl/);
    expect(await contents()).toEqual(before);
    expect(await readdir(join(runDir, 'model'))).not.toContain('report.html');

    // Anywhere else in the run directory is fine: the default, another name, a new subdirectory.
    const byDefault = await runCli(['report', runDir]);
    expect(byDefault.code, byDefault.stderr).toBe(0);
    expect(byDefault.stdout).toBe(`wrote ${defaultOut}\n`);
    await mkdir(join(runDir, 'reports'));
    for (const output of [
      join(runDir, 'other.html'),
      join(runDir, 'reports', 'r.html'),
      join(aside, 'report.html'),
    ]) {
      const written = await runCli(['report', runDir, '--output', output]);
      expect(written.code, written.stderr).toBe(0);
      expect(written.stdout).toBe(`wrote ${output}\n`);
      expect(await readFile(output, 'utf8')).toMatch(/^<!doctype html>/i);
    }
    // Its metrics read as before: nothing of the run was replaced.
    expect((await runCli(['report', runDir])).code).toBe(0);
    expect(await contents()).toEqual(before);

    // A directory in the report's place is named as such (it was named as its parent directory).
    await mkdir(join(runDir, 'taken.html'));
    const directory = await runCli(['report', runDir, '--output', join(runDir, 'taken.html')]);
    expect(directory.code).toBe(1);
    expect(directory.stderr).toBe(
      `callosum: INVALID_ARGUMENT: cannot write the report to ${join(runDir, 'taken.html')}: ` +
        `${join(runDir, 'taken.html')} is a directory\n`,
    );
  }, 120_000);

  it('names a metrics.jsonl that is a directory or a pipe, as ARTIFACT_INVALID', async () => {
    const dir = await temporaryDirectory('report-metrics-directory');
    await mkdir(join(dir, 'metrics.jsonl'));
    const directory = await runCli(['report', dir]);
    expect(directory.code).toBe(1);
    expect(directory.stderr).toBe(
      `callosum: ARTIFACT_INVALID: ${join(dir, 'metrics.jsonl')} is a directory: a run's metrics.jsonl is a file\n`,
    );

    // A named pipe would be read until something wrote to it and closed it: never, here.
    const piped = await temporaryDirectory('report-metrics-pipe');
    execFileSync('mkfifo', [join(piped, 'metrics.jsonl')]);
    const pipe = await runCli(['report', piped], { timeoutMs: 20_000 });
    expect(pipe.signal).toBeNull();
    expect(pipe.stderr).toBe(
      `callosum: ARTIFACT_INVALID: ${join(piped, 'metrics.jsonl')} is not a regular file: a run's metrics.jsonl is a file\n`,
    );
  });

  it.skipIf(process.getuid?.() === 0)(
    'names a metrics.jsonl it may not read, as ARTIFACT_INVALID',
    async () => {
      const dir = await temporaryDirectory('report-metrics-unreadable');
      const [first] = (await readFile(join(run.runDir, 'metrics.jsonl'), 'utf8')).split('\n');
      await writeFile(join(dir, 'metrics.jsonl'), `${first}\n`);
      await chmod(join(dir, 'metrics.jsonl'), 0o000);
      try {
        const unreadable = await runCli(['report', dir]);
        expect(unreadable.code).toBe(1);
        expect(unreadable.stderr).toBe(
          `callosum: ARTIFACT_INVALID: cannot read the run's metrics record ${join(dir, 'metrics.jsonl')}: permission denied\n`,
        );
      } finally {
        await chmod(join(dir, 'metrics.jsonl'), 0o644);
      }
    },
  );
});
