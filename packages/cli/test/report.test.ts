import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
});
