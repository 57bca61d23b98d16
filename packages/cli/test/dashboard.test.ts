import { startCoordinator } from '@callosum/coordinator';
import { loadMnist } from '@callosum/core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
// The built module, so that local workers start the built CLI entry point next to it.
import { type LocalWorker, spawnLocalWorker } from '../dist/local-workers.js';
import { artifactPath, launchBrowser, noBrowser } from './browser.js';
import { runGate, temporaryDirectory } from './processes.js';

// A real run (a coordinator in this process, `callosum worker` processes on loopback) watched in
// headless Chromium.

const STEPS = 80;
const VICTIM = 'dash-worker-1';
const NAMES = [VICTIM, 'dash-worker-2', 'dash-worker-3'];
let browser: Browser | undefined;
const workers: LocalWorker[] = [];

beforeAll(async () => {
  if (noBrowser === undefined) browser = await launchBrowser();
});
beforeEach((context) => {
  if (noBrowser !== undefined) context.skip(noBrowser);
});
afterAll(async () => {
  await browser?.close();
  for (const worker of workers) worker.process.kill('SIGKILL');
});

describe('the dashboard of a live run', () => {
  it('plots every step, lists every worker with its state, shows a SIGKILLed worker gone within seconds, all without a reload', async () => {
    const outDir = await temporaryDirectory('dashboard');
    // The run waits after step 20 until the page has shown the victim gone: however slow the browser
    // is here, the worker is killed mid-run, and the page has steps left to plot by itself.
    const victimShownGone = runGate();
    const coordinator = await startCoordinator({
      onStep: async ({ step }) => {
        if (step === 20) await victimShownGone.wait();
      },
      outDir,
      dataset: await loadMnist({ dir: inject('smallTestSetDir') }),
      minWorkers: NAMES.length,
      training: { maxSteps: STEPS, batchSize: 64, seed: 3 },
      log: () => {},
    });
    const page = await browser!.newPage({ viewport: { width: 1400, height: 1500 } });
    let loads = 0;
    page.on('load', () => {
      loads += 1;
    });
    await page.goto(coordinator.dashboardUrl ?? 'the coordinator serves no dashboard');
    await page.locator('#progress', { hasText: 'waiting for the first step' }).waitFor({ timeout: 5_000 });
    const started = NAMES.map((name) =>
      spawnLocalWorker(name, coordinator.url, { backend: 'wasm', threads: 1 }),
    );
    workers.push(...started);

    await expect
      .poll(() => page.locator('#workers tr[data-state="healthy"]').count(), { timeout: 60_000 })
      .toBe(NAMES.length);
    const rows = await Promise.all(
      (await page.locator('#workers tbody tr').all()).map(async (row) => [
        await row.getAttribute('data-name'),
        await row.getAttribute('data-state'),
      ]),
    );
    expect(rows.sort()).toEqual(NAMES.map((name) => [name, 'healthy']));

    const lossPoints = async () => Number(await page.locator('#chart-loss').getAttribute('data-points'));
    await expect.poll(lossPoints, { timeout: 60_000 }).toBeGreaterThanOrEqual(10);
    const pointsBefore = await lossPoints();
    const victim = page.locator(`#workers tr[data-name="${VICTIM}"]`);
    const killedAt = Date.now();
    started[0]?.process.kill('SIGKILL');
    await victim.and(page.locator('[data-state="gone"]')).waitFor({ timeout: 10_000 });
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    victimShownGone.open();

    const summary = await coordinator.result;
    expect(summary.steps).toBe(STEPS);
    await page.locator('#status[data-state="finished"]').waitFor({ timeout: 10_000 });
    // Every step is plotted, up to the last, and the page got there by itself from where it was.
    expect(await lossPoints()).toBe(STEPS);
    expect(await page.locator('#chart-loss').getAttribute('data-last-step')).toBe(String(STEPS));
    expect(pointsBefore).toBeLessThan(STEPS);
    expect(loads).toBe(1);
    expect(await page.locator('#workers tr[data-state="gone"]').count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#timeline rect').count()).toBeGreaterThan(0);
    expect(await page.locator('#events li[data-kind="worker-left"]', { hasText: VICTIM }).count()).toBe(1);
    await page.screenshot({ path: await artifactPath('dashboard.png'), fullPage: true });
    await page.close();
  }, 120_000);
});
