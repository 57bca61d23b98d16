/**
 * Helpers shared by the benchmark scripts (`packages/core/bench/gradients.mjs`,
 * `packages/cli/bench/throughput.mjs`, `packages/cli/bench/scale.mjs`): command-line arguments, running
 * the script itself as a `--child` process and collecting its one result message, the machine
 * description, the load average and the CPU other processes take, training runs sized in steps and
 * their progress lines, text tables, numbers, sums, the median and quantiles.
 *
 * Plain ESM JavaScript with no dependencies beyond Node, imported by relative path, so that a benchmark
 * needs no build step of its own.
 */
import { fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------------------
// Arguments.

/**
 * The script's command-line arguments, for `parseArgs`. pnpm forwards a `--` separator to the script; it
 * separates nothing here, so it is dropped.
 *
 * @returns {string[]}
 */
export function scriptArgs() {
  return process.argv.slice(2).filter((arg) => arg !== '--');
}

/**
 * Parses `text` as a positive integer, or throws an error that names the option.
 *
 * @param {string} option The option as typed, e.g. `--steps`.
 * @param {string} text The value given.
 * @returns {number}
 */
export function positiveInteger(option, text) {
  return integerAtLeast(option, text, 1, 'a positive integer');
}

/**
 * Parses `text` as an integer ≥ 0, or throws an error that names the option.
 *
 * @param {string} option The option as typed, e.g. `--warmup`.
 * @param {string} text The value given.
 * @returns {number}
 */
export function nonNegativeInteger(option, text) {
  return integerAtLeast(option, text, 0, 'a non-negative integer');
}

/**
 * Parses `text` as a finite number > 0, or throws an error that names the option.
 *
 * @param {string} option The option as typed, e.g. `--gpu-step-ms`.
 * @param {string} text The value given.
 * @returns {number}
 */
export function positiveNumber(option, text) {
  const parsed = Number(text);
  if (!(parsed > 0 && Number.isFinite(parsed)))
    throw new Error(`${option}: "${text}" is not a positive number`);
  return parsed;
}

function integerAtLeast(option, text, min, what) {
  const parsed = Number(text);
  if (!Number.isInteger(parsed) || parsed < min) throw new Error(`${option}: "${text}" is not ${what}`);
  return parsed;
}

// ---------------------------------------------------------------------------------------------------------
// Parent and child processes.

/**
 * Forks a script (normally the caller itself, as `--child …`) and resolves with the one result message
 * it sends over IPC; if it exits without sending one, resolves with `failed(reason)` instead. Rejects only
 * if the process cannot be started. `onMessage` sees every message first, with the child (to answer it):
 * one it returns true for is not a result.
 *
 * @template T
 * @param {string | URL} script The script's file URL, normally `import.meta.url`.
 * @param {string[]} args Arguments for the child.
 * @param {object} options
 * @param {import('node:child_process').StdioOptions} options.stdio The child's stdio; must include `'ipc'`.
 * @param {(reason: string) => T} options.failed Builds the result for a child that sent none.
 * @param {(message: unknown, child: import('node:child_process').ChildProcess) => boolean} [options.onMessage]
 * @returns {Promise<T>}
 */
export function forkForResult(script, args, { stdio, failed, onMessage }) {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(script), args, { stdio });
    let result;
    child.on('message', (message) => {
      if (onMessage?.(message, child) !== true) result = message;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (result !== undefined) resolve(result);
      else {
        const how = signal === null ? `exit code ${code}` : `signal ${signal}`;
        resolve(failed(`benchmark child process failed (${how})`));
      }
    });
  });
}

/**
 * In a child process: sends `message` to the parent and resolves once it has been handed over.
 *
 * @param {unknown} message
 * @returns {Promise<void>}
 */
export function sendToParent(message) {
  return new Promise((resolve) => process.send(message, () => resolve()));
}

/**
 * The first line of an error's message (or of whatever was thrown), for a one-line report.
 *
 * @param {unknown} error
 * @returns {string}
 */
export function errorReason(error) {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}

// ---------------------------------------------------------------------------------------------------------
// Machine and load.

/**
 * Describes the machine, one aligned `Label:   value` line each: CPU, RAM and Node, then `extra` (the
 * benchmark's own lines), then the load average now, `at start`.
 *
 * @param {string[]} extra
 * @returns {string[]}
 */
export function machineLines(extra) {
  const cpus = os.cpus();
  return [
    `CPU:     ${cpus[0]?.model ?? 'unknown'} × ${cpus.length} cores`,
    `RAM:     ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `Node:    ${process.version} (${process.platform}-${process.arch})`,
    ...extra,
    loadLine('start'),
  ];
}

/**
 * The line that gives the load average now, e.g. `Load:    0.81 2.19 2.19 (1/5/15 min) at end`.
 *
 * @param {string} when `start` or `end`.
 * @returns {string}
 */
export function loadLine(when) {
  return `Load:    ${formatLoad()} (1/5/15 min) at ${when}`;
}

/**
 * The 1-, 5- and 15-minute load averages, e.g. `0.81 2.19 2.19`.
 *
 * @returns {string}
 */
export function formatLoad() {
  return os
    .loadavg()
    .map((load) => load.toFixed(2))
    .join(' ');
}

/** Linux's clock ticks per second in /proc (USER_HZ, 100 on every common build). */
const TICKS_PER_SECOND = 100;

/**
 * Starts watching how much CPU the rest of the machine uses: other processes than this one and its
 * descendants (a benchmark's workers), which the load average cannot tell apart from the benchmark's own.
 * Linux only (/proc); elsewhere `stop` returns undefined.
 *
 * @returns {{ stop: () => number | undefined }} `stop` gives the mean number of cores the others kept
 *   busy since the start.
 */
export function watchOtherCpu() {
  const start = cpuSample();
  return {
    stop() {
      const end = cpuSample();
      if (start === undefined || end === undefined) return undefined;
      const ours = [...end.ours].reduce(
        (total, [pid, ticks]) => total + ticks - (start.ours.get(pid) ?? 0),
        0,
      );
      const seconds = (end.at - start.at) / 1000;
      return Math.max(0, end.busy - start.busy - ours) / TICKS_PER_SECOND / seconds;
    },
  };
}

/** The machine's busy ticks (all cores) and the CPU ticks of this process and each of its descendants. */
function cpuSample() {
  try {
    const at = Date.now();
    // user nice system idle iowait irq softirq steal: steal is the hypervisor's, not this machine's processes'.
    const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const processes = readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .flatMap((pid) => {
        try {
          // The fields after the command's closing parenthesis: state, ppid, … utime (12th), stime (13th).
          const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
          return [
            { pid: Number(pid), ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) },
          ];
        } catch {
          return []; // It exited while the list was read.
        }
      });
    const ours = new Map();
    const family = new Set([process.pid]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const { pid, ppid } of processes) {
        if (family.has(ppid) && !family.has(pid)) {
          family.add(pid);
          grew = true;
        }
      }
    }
    for (const { pid, ticks } of processes) if (family.has(pid)) ours.set(pid, ticks);
    return { at, busy: user + nice + system + irq + softirq, ours };
  } catch {
    return undefined; // No /proc: not Linux.
  }
}

// ---------------------------------------------------------------------------------------------------------
// Training runs.

/** Size of the MNIST training set, only to give a run enough epochs for its steps. */
const MNIST_TRAIN_COUNT = 60_000;
/** A progress line every this many steps. */
const PROGRESS_EVERY = 25;

/**
 * `config` set to end after `steps` steps: `maxSteps`, and enough epochs (of MNIST's training set) that
 * `maxSteps` is what ends the run.
 *
 * @template {{ epochs: number, batchSize: number }} C
 * @param {C} config
 * @param {number} steps
 * @returns {C & { maxSteps: number }}
 */
export function trainingForSteps(config, steps) {
  return {
    ...config,
    epochs: Math.max(config.epochs, Math.ceil((steps * config.batchSize) / MNIST_TRAIN_COUNT) + 1),
    maxSteps: steps,
  };
}

/**
 * A run's progress on stderr: a line every 25 steps and at the last, with the step's samples/s and the
 * load average.
 *
 * @param {string} name The configuration, shown in brackets.
 * @returns {(step: number, totalSteps: number, samplesPerSecond: number) => void}
 */
export function stepProgress(name) {
  return (step, totalSteps, samplesPerSecond) => {
    if (step % PROGRESS_EVERY !== 0 && step !== totalSteps) return;
    process.stderr.write(
      `[${name}] step ${step}/${totalSteps}: ${formatNumber(samplesPerSecond, 0)} samples/s this step ` +
        `(load ${formatLoad()})\n`,
    );
  };
}

/**
 * How the coordinator cuts a batch among workers, e.g. "43/43/42", or "64" when the shards are equal.
 *
 * @param {number} batch
 * @param {number} parts
 * @returns {string}
 */
export function shardSizes(batch, parts) {
  const base = Math.floor(batch / parts);
  const extra = batch % parts;
  const sizes = Array.from({ length: parts }, (_, index) => base + (index < extra ? 1 : 0));
  return sizes.every((size) => size === sizes[0]) ? String(sizes[0]) : sizes.join('/');
}

// ---------------------------------------------------------------------------------------------------------
// Tables, numbers and statistics.

/**
 * Formats rows of cells as a text table: the header row, a rule of dashes, then the other rows; columns
 * two spaces apart, the `numeric` ones right-aligned and the others left-aligned, no trailing spaces.
 *
 * @param {string[][]} rows The header row first; every row has the same number of cells.
 * @param {Set<number>} numeric Indexes of the columns to right-align.
 * @returns {string[]} The table's lines.
 */
export function formatTable(rows, numeric) {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const format = (row) =>
    row
      .map((cell, column) =>
        numeric.has(column) ? cell.padStart(widths[column]) : cell.padEnd(widths[column]),
      )
      .join('  ')
      .trimEnd();
  return [format(rows[0]), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.slice(1).map(format)];
}

/**
 * `value` with `digits` decimals and thousands separators, e.g. `1,234.5`.
 *
 * @param {number} value
 * @param {number} digits
 * @returns {string}
 */
export function formatNumber(value, digits) {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * The sum of `numbers` (0 for none).
 *
 * @param {number[]} numbers
 * @returns {number}
 */
export function sum(numbers) {
  return numbers.reduce((total, value) => total + value, 0);
}

/**
 * The median of `numbers` (the mean of the two middle values for an even count); NaN for none. The
 * array is not changed and need not be sorted.
 *
 * @param {number[]} numbers
 * @returns {number}
 */
export function median(numbers) {
  return quantile(numbers, 0.5);
}

/**
 * The linearly interpolated quantile `q` (in [0, 1]) of `numbers`; NaN for none. The array is not
 * changed and need not be sorted.
 *
 * @param {number[]} numbers
 * @param {number} q
 * @returns {number}
 */
export function quantile(numbers, q) {
  if (numbers.length === 0) return Number.NaN;
  const sorted = [...numbers].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower);
}
