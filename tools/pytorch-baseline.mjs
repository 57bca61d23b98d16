/**
 * The PyTorch baseline of the benchmark scripts: runs `tools/pytorch_baseline.py` (the reference CNN in
 * PyTorch, one BLAS thread per process) with the Python that has torch, and formats the comparison with
 * Callosum's figures of the same run. Optional: where no Python can import torch the benchmarks print
 * one line saying so (`skipLine`) and carry on; nothing here is part of `pnpm test`.
 *
 * The Python is `python3`, or the command in `CALLOSUM_BENCH_PYTHON` (e.g. `/usr/bin/python3` where a
 * version manager's `python3` comes first on PATH but Debian's `python3-torch` belongs to the system's).
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
  const python = process.env.CALLOSUM_BENCH_PYTHON || 'python3';
  const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.error !== undefined) {
    return { available: false, reason: `${python} cannot be run (${probe.error.message})` };
  }
  if (probe.status !== 0) {
    const lines = probe.stderr.trim().split('\n');
    return {
      available: false,
      reason: `${python} -c 'import torch' failed: ${lines[lines.length - 1]}`,
    };
  }
  return { available: true, python, torch: probe.stdout.trim() };
}

/** The line a benchmark prints instead of the comparison. */
export function skipLine(pytorch) {
  return (
    `PyTorch baseline skipped: ${pytorch.reason} (install python3-torch and libopenblas0-pthread, ` +
    'or set CALLOSUM_BENCH_PYTHON to a Python with torch)'
  );
}

/**
 * Measures one PyTorch case; resolves with the script's JSON result (samplesPerSecond, medianStepMs, blas,
 * …), or rejects with the script's last error line.
 *
 * @param {string} python
 * @param {object} options
 * @param {string} options.dataDir Directory of the MNIST IDX files.
 * @param {'gradient' | 'train' | 'ddp'} options.mode
 * @param {number} options.batchSize Global batch (split over the processes in ddp).
 * @param {number} [options.processes] ddp processes.
 * @param {number} options.steps Timed steps.
 * @param {number} options.warmup Untimed steps before them.
 */
export function measurePytorch(python, { dataDir, mode, batchSize, processes = 1, steps, warmup }) {
  const args = [
    SCRIPT,
    ...['--data', dataDir, '--mode', mode, '--batch-size', String(batchSize)],
    ...['--processes', String(processes), '--steps', String(steps), '--warmup', String(warmup)],
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
 * The comparison table: one row per case with Callosum's and PyTorch's samples/s and their ratio, then
 * which torch and BLAS were measured.
 *
 * @param {{ label: string, pytorchLabel: string, callosum: number, pytorch: object | string }[]} rows
 *   `pytorch` is the case's result, or why it failed.
 * @param {string} torchVersion
 * @returns {string[]}
 */
export function comparisonLines(rows, torchVersion) {
  const table = [['Callosum', 'samples/s', 'PyTorch', 'samples/s', 'Callosum ÷ PyTorch']];
  const notes = [];
  for (const row of rows) {
    const measured = typeof row.pytorch === 'object';
    if (!measured) notes.push(`${row.pytorchLabel}: failed: ${row.pytorch}`);
    table.push([
      row.label,
      row.callosum.toFixed(0),
      row.pytorchLabel,
      measured ? row.pytorch.samplesPerSecond.toFixed(0) : 'failed',
      measured ? `${(row.callosum / row.pytorch.samplesPerSecond).toFixed(2)}×` : '—',
    ]);
  }
  const first = rows.map((row) => row.pytorch).find((result) => typeof result === 'object');
  const blas =
    first === undefined
      ? []
      : [
          `PyTorch ${torchVersion}, ${first.torchThreads} thread(s) per process, OMP_NUM_THREADS=${first.ompNumThreads}; ` +
            `BLAS mapped: ${first.blas.join(', ') || 'none'} (build config BLAS_INFO=${first.blasBuildInfo})`,
        ];
  return [...formatTable(table, new Set([1, 3, 4])), '', ...blas, ...notes];
}
