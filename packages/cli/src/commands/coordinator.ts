import { advertisedUrls, COORDINATOR_DEFAULTS, startCoordinator } from '@callosum/coordinator';
import type { Command } from 'commander';
import { addOptions, booleanOption, envOption } from '../env-options.js';
import { integer } from '../option-parsers.js';
import { jsonOption, type RunFlags, reportRun, traceOption } from '../run-report.js';
import { whenAborted } from '../signals.js';
import { serverTlsFrom, serverTlsOptions, type TlsFlags } from '../tls-options.js';
import { type TokenFlags, tokenFrom, tokenOptions } from '../token.js';
import {
  checkpointOptions,
  portOption,
  sharedMemoryOption,
  taskFrom,
  topologyOption,
  trainingOptions,
  trainingOptionsFrom,
  wireDtypeOption,
} from '../training-options.js';

interface CoordinatorFlags extends RunFlags, TokenFlags, TlsFlags {
  insecure?: boolean;
  host: string;
  port: number;
  minWorkers: number;
  maxWorkers?: number;
  startTimeout: number;
  rejoinTimeout: number;
  sharedMemory: boolean;
  peerTls?: boolean;
}

/** The default port of a standalone coordinator, so workers on other hosts know where to connect. */
export const DEFAULT_COORDINATOR_PORT = 7070;

export function registerCoordinatorCommand(program: Command): void {
  const command = program
    .command('coordinator')
    .description('run a training run and wait for `callosum worker` processes, possibly on other hosts');
  addOptions(command, [
    envOption('--host <address>', 'address to listen on (0.0.0.0 for every interface)').default(
      COORDINATOR_DEFAULTS.host,
    ),
    envOption('--min-workers <n>', 'start training once this many workers joined')
      .argParser(integer(1))
      .default(COORDINATOR_DEFAULTS.minWorkers),
    envOption('--max-workers <n>', 'refuse workers beyond this many').argParser(integer(1)),
    envOption('--start-timeout <ms>', 'give up if min-workers have not joined by then')
      .argParser(integer(1))
      .default(COORDINATOR_DEFAULTS.startTimeoutMs),
    envOption(
      '--rejoin-timeout <ms>',
      'once training runs and every worker is gone, wait this long for one to (re)join, then checkpoint and stop',
    )
      .argParser(integer(0))
      .default(COORDINATOR_DEFAULTS.noWorkerTimeoutMs),
    ...trainingOptions(),
    wireDtypeOption(),
    portOption(DEFAULT_COORDINATOR_PORT),
    sharedMemoryOption(),
    topologyOption(),
    booleanOption(
      '--peer-tls',
      'ring topology: workers reduce over TLS among themselves (each needs --peer-tls-ca)',
    ),
    ...checkpointOptions(),
    ...tokenOptions(),
    ...serverTlsOptions(),
    booleanOption('--insecure', 'allow listening beyond loopback without a token'),
    traceOption(),
    jsonOption(),
  ]);
  command.action((flags: CoordinatorFlags) =>
    reportRun(command, flags, async (settings, { log, onStep, onEvaluation, signal, onStarted }) => {
      const task = await taskFrom(command, flags);
      const coordinator = await startCoordinator({
        ...(task === undefined ? {} : { task }),
        host: flags.host,
        port: flags.port,
        minWorkers: flags.minWorkers,
        ...tokenSettings(flags),
        ...tlsSettings(flags),
        ...(flags.maxWorkers === undefined ? {} : { maxWorkers: flags.maxWorkers }),
        startTimeoutMs: flags.startTimeout,
        noWorkerTimeoutMs: flags.rejoinTimeout,
        training: trainingOptionsFrom(command, flags),
        sharedMemory: flags.sharedMemory,
        ...settings,
        ...(flags.data === undefined ? {} : { dataDir: flags.data }),
        log,
        onStep,
        onEvaluation,
        // A stop while the task's data loads gives the start up.
        signal,
      });
      for (const url of advertisedUrls(coordinator.url))
        log(
          `coordinator: workers connect with: callosum worker --connect ${url}${flags.task === undefined ? '' : ` --task ${flags.task}`}`,
        );
      onStarted();
      // Also a stop asked for while the coordinator was starting: it stops before its first step.
      whenAborted(signal, (reason) => void coordinator.stop(reason));
      return coordinator.result;
    }),
  );
}

function tokenSettings(flags: CoordinatorFlags): { token?: string; insecure: boolean } {
  const token = tokenFrom(flags);
  return { ...(token === undefined ? {} : { token }), insecure: flags.insecure === true };
}

function tlsSettings(flags: CoordinatorFlags): { tls?: NonNullable<ReturnType<typeof serverTlsFrom>> } {
  const tls = serverTlsFrom(flags);
  return tls === undefined ? {} : { tls };
}
