import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_ENTRY, smallTestSetData, temporaryDirectory } from './processes.js';

const ESC = String.fromCharCode(27);
function hasScript(): boolean {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Runs `callosum <args>` in a real pseudo-terminal of `columns` columns (util-linux `script`). */
function inTerminal(columns: number, args: string[]): Promise<string> {
  const command = `stty cols ${columns} rows 40; exec ${process.execPath} ${CLI_ENTRY} ${args.join(' ')}`;
  return new Promise((resolve) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.on('exit', () => resolve(output));
  });
}

describe.skipIf(!hasScript())('the progress bar in a real terminal', () => {
  it('fits 80 columns, never restores a saved cursor position, and leaves the summary below the bar', async () => {
    const runDir = await temporaryDirectory('terminal');
    const output = await inTerminal(80, [
      'train',
      '--workers',
      '2',
      '--steps',
      '12',
      '--batch-size',
      '64',
      ...smallTestSetData(),
      '--out',
      join(runDir, 'r'),
    ]);
    expect(output).toContain('Training complete');
    // cli-progress saved the cursor at the bar's start and returned there: later text overwrote old lines.
    for (const restore of [`${ESC}7`, `${ESC}8`, `${ESC}[s`, `${ESC}[u`])
      expect(output).not.toContain(restore);
    const barLines = output
      .split(/\r|\n/)
      .map((line) => line.replace(new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g'), ''))
      .filter((line) => line.includes('step '));
    expect(barLines.length).toBeGreaterThan(0);
    for (const line of barLines) expect(line.length).toBeLessThan(80);
    expect(barLines.at(-1)).toMatch(/step 12\/12/);
    // The summary starts on a fresh line after the bar, not on top of it.
    expect(output).toMatch(/step 12\/12[^\n]*\r?\n(.*\n)*Training complete/);
  }, 120_000);
});
