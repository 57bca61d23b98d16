/**
 * The PyTorch baseline of the benchmark scripts: runs `tools/pytorch_baseline.py` (the reference CNN in
 * PyTorch, one BLAS thread per process) with the Python that has torch, and formats the comparison with
 * Callosum's figures of the same run. Optional: where no Python can import torch the benchmarks print
 * one line saying so (`skipLine`) and carry on; nothing here is part of `pnpm test`.
 *
 * The Python is the command in `CALLOSUM_BENCH_PYTHON`, else the first of `python3` and `/usr/bin/python3`
 * that imports torch (a version manager's `python3` may come first on PATH while Debian's `python3-torch`
 * belongs to the system's).
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatTable } from './bench-support.mjs';

const SCRIPT = fileURLToPath(new URL('pytorch_baseline.py', import.meta.url));

/**
 * The Python to measure PyTorch with, or why there is none.
 *
 * @returns {{ available: true, python: string, torch: string } | { available: false, reason: string }}
 */
export function findPytorch() {
  const candidates = process.env.CALLOSUM_BENCH_PYTHON
    ? [process.env.CALLOSUM_BENCH_PYTHON]
    : // Debian's python3-torch installs for the system Python, which a pyenv or venv python3 on PATH hides.
      ['python3', '/usr/bin/python3'];
  const reasons = [];
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (probe.error !== undefined) {
      reasons.push(`${python} cannot be run (${probe.error.message})`);
    } else if (probe.status !== 0) {
      const lines = probe.stderr.trim().split('\n');
      reasons.push(`${python} -c 'import torch' failed: ${lines[lines.length - 1]}`);
    } else {
      return { available: true, python, torch: probe.stdout.trim() };
    }
  }
  return { available: false, reason: reasons.join('; ') };
}

/** The line a benchmark prints instead of the comparison. */
export function skipLine(pytorch) {
  return (
    `PyTorch baseline skipped: ${pytorch.reason} (install python3-torch and libopenblas0-pthread, ` +
    'or set CALLOSUM_BENCH_PYTHON to a Python with torch)'
  );
}

/**
 * How PyTorch is run. As installed, glibc's malloc returns the large freed activation buffers to the
 * kernel, and a process that falls into that pattern spends much of its time in page faults on fresh
 * memory (run to run it is either fast or about 4× slower). The second setup keeps freed memory in the
 * process (glibc's documented tunables, as an allocator such as jemalloc would), which measures PyTorch
 * without that cost.
 */
export const PYTORCH_SETUPS = [
  { name: 'as installed', env: {} },
  {
    name: 'malloc keeps freed memory',
    env: { MALLOC_MMAP_THRESHOLD_: '1073741824', MALLOC_TRIM_THRESHOLD_: '1073741824' },
  },
];

/**
 * Measures one PyTorch case in every setup; resolves with one entry per setup: the script's JSON result
 * (samplesPerSecond, medianStepMs, systemSeconds, blas, …) or, if it failed, its last error line.
 *
 * @param {string} python
 * @param {object} options
 * @param {string} options.dataDir Directory of the MNIST IDX files.
 * @param {'gradient' | 'train' | 'ddp'} options.mode
 * @param {number} options.batchSize Global batch (split over the processes in ddp).
 * @param {number} [options.processes] ddp processes.
 * @param {number} options.steps Timed steps.
 * @param {number} options.warmup Untimed steps before them.
 * @returns {Promise<{ setup: string, result: object | string }[]>}
 */
export async function measurePytorch(python, options) {
  const measured = [];
  for (const setup of PYTORCH_SETUPS) {
    const result = await runScript(python, options, setup.env).catch((error) => error.message);
    measured.push({ setup: setup.name, result });
  }
  return measured;
}

function runScript(python, { dataDir, mode, batchSize, processes = 1, steps, warmup }, env) {
  const args = [
    SCRIPT,
    ...['--data', dataDir, '--mode', mode, '--batch-size', String(batchSize)],
    ...['--processes', String(processes), '--steps', String(steps), '--warmup', String(warmup)],
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last));
      else {
        const why =
          stderr.trim().split('\n').pop() || (signal === null ? `exit code ${code}` : `signal ${signal}`);
        reject(new Error(`${SCRIPT} --mode ${mode}: ${why}`));
      }
    });
  });
}

/**
 * The comparison table: for each case, one row per PyTorch setup with Callosum's and PyTorch's samples/s,
 * PyTorch's system CPU time as a share of its CPU time, and the ratio; then which torch and BLAS ran.
 *
 * @param {{ label: string, pytorchLabel: string, callosum: number,
 *   pytorch: { setup: string, result: object | string }[] }[]} rows
 * @param {string} torchVersion
 * @returns {string[]}
 */
export function comparisonLines(rows, torchVersion) {
  const table = [
    ['Callosum', 'samples/s', 'PyTorch', 'setup', 'samples/s', 'system CPU', 'Callosum ÷ PyTorch'],
  ];
  const notes = [];
  for (const row of rows) {
    for (const { setup, result } of row.pytorch) {
      const measured = typeof result === 'object';
      if (!measured) notes.push(`${row.pytorchLabel}, ${setup}: failed: ${result}`);
      const cpu = measured ? result.userSeconds + result.systemSeconds : Number.NaN;
      table.push([
        row.label,
        row.callosum.toFixed(0),
        row.pytorchLabel,
        setup,
        measured ? result.samplesPerSecond.toFixed(0) : 'failed',
        measured ? `${((100 * result.systemSeconds) / cpu).toFixed(0)}%` : '—',
        measured ? `${(row.callosum / result.samplesPerSecond).toFixed(2)}×` : '—',
      ]);
    }
  }
  const first = rows
    .flatMap((row) => row.pytorch.map(({ result }) => result))
    .find((result) => typeof result === 'object');
  const blas =
    first === undefined
      ? []
      : [
          `PyTorch ${torchVersion}, ${first.torchThreads} thread(s) per process, OMP_NUM_THREADS=${first.ompNumThreads}; ` +
            `BLAS mapped: ${first.blas.join(', ') || 'none'} (build config BLAS_INFO=${first.blasBuildInfo})`,
          "system CPU = share of the (first) PyTorch process's CPU time over the timed steps spent in the " +
            'kernel, mostly page faults on memory malloc returned to it',
          `malloc keeps freed memory = ${Object.entries(PYTORCH_SETUPS[1].env)
            .map(([name, value]) => `${name}=${value}`)
            .join(' ')}`,
        ];
  return [...formatTable(table, new Set([1, 4, 5, 6])), '', ...blas, ...notes];
}
