import { resolve } from 'node:path';
import {
  type Coordinator,
  type CoordinatorOptions,
  type RunCallbacks,
  type RunSummary,
  startCoordinator,
  type Topology,
} from '@callosum/coordinator';
import {
  type BackendPreference,
  CallosumError,
  ErrorCodes,
  isLoopbackHost,
  requireBackendPreference,
  shownWithType,
  type Task,
  type TrainingOverrides,
  type WireDtype,
} from '@callosum/core';
import { defaultThreads } from '@callosum/worker';
import { USAGE_HINT } from './failure-message.js';
import { assignGpus } from './gpu-assignment.js';
import { type LocalWorker, reapWorkers, spawnLocalWorker } from './local-workers.js';
import { STOP_SIGNALS, whenAborted } from './signals.js';
import { generateToken } from './token.js';

export interface LocalTrainingOptions extends RunCallbacks {
  readonly workers: number;
  /** Compute threads per worker; default: the usable cores shared among the workers (defaultThreads). */
  readonly threads?: number;
  readonly backend: BackendPreference;
  /**
   * GPUs shared out one per worker as CUDA_VISIBLE_DEVICES (worker i gets gpus[i mod length]): indices or
   * GPU-UUIDs; [] assigns none. Default: a CUDA_VISIBLE_DEVICES already set passes to every worker
   * unchanged; else the GPUs nvidia-smi lists (none when it is absent, fails or takes over 5 s).
   */
  readonly gpus?: readonly string[];
  /** A task module's run: the task loaded here and its path, which every local worker loads too. */
  readonly task?: Task;
  readonly taskModule?: string;
  readonly training: TrainingOverrides;
  /** What weights and gradients travel in (the coordinator's wireDtype; default float32). */
  readonly wireDtype?: WireDtype;
  readonly outDir: string;
  /** Continue the run in outDir from its newest checkpoint. */
  readonly resume?: boolean;
  /** A new run in an outDir holding another run moves that run's files aside instead of being refused. */
  readonly overwrite?: boolean;
  readonly checkpointEverySteps?: number;
  /** Write the run's timeline here (the coordinator's traceFile). */
  readonly traceFile?: string;
  /** Serve the dashboard and /metrics (the coordinator's liveViews; default true). */
  readonly liveViews?: boolean;
  /** Large frames through files on /dev/shm rather than the sockets (the coordinator's sharedMemory; default true). */
  readonly sharedMemory?: boolean;
  readonly dataDir?: string | undefined;
  readonly host?: string;
  readonly port?: number;
  /** Where the gradients are reduced (the coordinator's `topology`; default star). */
  readonly topology?: Topology;
  /** Aborts the run (e.g. on SIGINT); the result then rejects with the reason. */
  readonly signal?: AbortSignal;
  /** Called with the coordinator once it listens (e.g. to finish the run early from a callback). */
  readonly onStarted?: (coordinator: Coordinator) => void;
}

const WORKER_EXIT_GRACE_MS = 15_000;
/**
 * A stop (SIGINT, SIGTERM) has 8 s in all before the process exits without waiting (signals.ts), and
 * its checkpoint is already written when the workers are reaped: a worker that does not exit by then is
 * killed well within that, so that the stop still prints how to continue the run.
 */
const STOPPED_WORKER_GRACE_MS = 2_000;

/**
 * torchrun --standalone for Callosum: a coordinator in this process and `workers` worker processes on
 * loopback. Resolves with the run summary once training, evaluation and saving are done and every
 * worker has exited.
 */
export async function trainWithLocalWorkers(options: LocalTrainingOptions): Promise<RunSummary> {
  // Checked here, where the caller's names apply: a worker would only say so in its own log.
  for (const [option, value] of [
    ['workers', options.workers],
    ['threads', options.threads ?? 1],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `${option} must be an integer >= 1, got ${shownWithType(value)}`,
      );
    }
  }
  requireBackendPreference(options.backend);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Whether a step has been reported: before the first, the run waits for every local worker.
  let stepped = false;
  // Even on loopback, only the workers started here may join: a fresh secret for every run.
  const token = generateToken();
  const coordinatorOptions: CoordinatorOptions = {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    ...(options.topology === undefined ? {} : { topology: options.topology }),
    // Local workers never reduce over TLS (said, so that a resumed ring run that lost its marker need not guess).
    peerTls: false,
    training: options.training,
    ...(options.task === undefined ? {} : { task: options.task }),
    outDir: options.outDir,
    minWorkers: options.workers,
    token,
    // Made for this run alone: on loopback the dashboard link may carry it, as Jupyter's does.
    tokenInDashboardUrl: isLoopbackHost(options.host ?? '127.0.0.1'),
    resume: options.resume === true,
    overwrite: options.overwrite === true,
    ...(options.checkpointEverySteps === undefined
      ? {}
      : { checkpointEverySteps: options.checkpointEverySteps }),
    log,
    ...(options.traceFile === undefined ? {} : { traceFile: options.traceFile }),
    ...(options.wireDtype === undefined ? {} : { wireDtype: options.wireDtype }),
    ...(options.liveViews === undefined ? {} : { liveViews: options.liveViews }),
    ...(options.sharedMemory === undefined ? {} : { sharedMemory: options.sharedMemory }),
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    onStep: (report) => {
      stepped = true;
      return options.onStep?.(report);
    },
    ...(options.onEvaluation === undefined ? {} : { onEvaluation: options.onEvaluation }),
    // A stop while the task's data loads gives the start up.
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  const threads = options.threads ?? defaultThreads(options.workers);
  const names = Array.from({ length: options.workers }, (_, index) => `worker-${index + 1}`);
  // Before the coordinator starts: a bad list fails the run before it binds a port.
  const gpus = await assignGpus({ workerNames: names, gpus: options.gpus });
  if (gpus.summary !== undefined) log(gpus.summary);
  const coordinator = await startCoordinator(coordinatorOptions);
  options.onStarted?.(coordinator);
  // Also a stop asked for while the coordinator was starting: it stops before its first step.
  const stopWatching = whenAborted(options.signal, (reason) => void coordinator.stop(reason));
  // Through the environment, not argv: other local users can read a process's arguments.
  const workerEnv = { CALLOSUM_TOKEN: token };
  const workers: LocalWorker[] = (options.signal?.aborted ? [] : names).map((name, index) =>
    spawnLocalWorker(
      name,
      coordinator.url,
      {
        backend: options.backend,
        threads,
        ...(options.taskModule === undefined ? {} : { taskModule: resolve(options.taskModule) }),
      },
      { ...workerEnv, ...gpus.environmentOf(index) },
    ),
  );
  let alive = workers.length;
  for (const worker of workers) {
    void worker.exited.then((code) => {
      alive -= 1;
      if (code === 0) return;
      // Told to stop (by us, or by a terminal's Ctrl-C or hang-up to the whole process group): not a failure.
      const toldToStop = options.signal?.aborted === true || STOP_SIGNALS.includes(code as NodeJS.Signals);
      if (!toldToStop) {
        log(`${worker.name} exited with ${code}; its last lines:\n  ${worker.recentLog.join('\n  ')}`);
      }
      // With no local worker left nothing can join: stop now instead of waiting out the timeout, with the
      // last words of the last one to go (a task that differs, say), which are most likely why.
      // A worker killed by a signal said nothing about it: its last line would mislead.
      const words = toldToStop
        ? undefined
        : typeof code === 'string' && code.startsWith('SIG')
          ? `${worker.name} was killed by ${code}`
          : worker.recentLog
              .map((line) => line.trim())
              .filter((line) => line !== '' && line !== USAGE_HINT)
              .at(-1)
              ?.slice(0, 1000);
      if (alive === 0) {
        void coordinator.stop(
          `every local worker process has exited${words === undefined ? '' : ` (the last: ${words})`}`,
        );
      } else if (!stepped && !toldToStop) {
        // The run starts once all of them have joined, and only they hold its token: it never would.
        void coordinator.stop(
          `${worker.name} exited before the first step${words === undefined ? '' : ` (${words})`}; ` +
            `the run needs all ${options.workers} local workers to start`,
        );
      }
    });
  }
  try {
    return await coordinator.result;
  } finally {
    stopWatching();
    // Stopped early, the coordinator tells workers to wait for a resumed run; local ones should not. A
    // stopped (SIGSTOP) worker acts on SIGTERM only once continued.
    const stopped = options.signal?.aborted === true;
    if (stopped) {
      for (const worker of workers) {
        worker.process.kill('SIGTERM');
        if (process.platform !== 'win32') worker.process.kill('SIGCONT');
      }
    }
    await reapWorkers(workers, stopped ? STOPPED_WORKER_GRACE_MS : WORKER_EXIT_GRACE_MS);
  }
}
