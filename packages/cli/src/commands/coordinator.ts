import { advertisedUrls, COORDINATOR_DEFAULTS, startCoordinator } from '@callosum/coordinator';
import type { Command } from 'commander';
import { booleanOption } from '../boolean-options.js';
import { integer } from '../option-parsers.js';
import { reportRun } from '../run-report.js';
import { addServerTlsOptions, serverTlsFrom, type TlsFlags } from '../tls-options.js';
import { addTokenOptions, type TokenFlags, tokenFrom } from '../token.js';
import {
  addCheckpointOptions,
  addJsonOption,
  addPortOption,
  addTrainingOptions,
  type CheckpointFlags,
  checkpointSettings,
  envOption,
  type TrainingFlags,
  trainingConfigFrom,
} from '../training-options.js';

interface CoordinatorFlags extends TrainingFlags, CheckpointFlags, TokenFlags, TlsFlags {
  insecure?: boolean;
  host: string;
  port: number;
  minWorkers: number;
  maxWorkers?: number;
  startTimeout: number;
  json?: boolean;
}

/** The default port of a standalone coordinator, so workers on other hosts know where to connect. */
export const DEFAULT_COORDINATOR_PORT = 7070;

export function registerCoordinatorCommand(program: Command): void {
  const command = program
    .command('coordinator')
    .description('run a training run and wait for `callosum worker` processes, possibly on other hosts')
    .addOption(
      envOption(
        '--host <address>',
        'address to listen on (0.0.0.0 for every interface)',
        'CALLOSUM_HOST',
      ).default(COORDINATOR_DEFAULTS.host),
    )
    .addOption(
      envOption('--min-workers <n>', 'start training once this many workers joined', 'CALLOSUM_MIN_WORKERS')
        .argParser(integer(1))
        .default(COORDINATOR_DEFAULTS.minWorkers),
    )
    .addOption(
      envOption('--max-workers <n>', 'refuse workers beyond this many', 'CALLOSUM_MAX_WORKERS').argParser(
        integer(1),
      ),
    )
    .addOption(
      envOption(
        '--start-timeout <ms>',
        'give up if min-workers have not joined by then',
        'CALLOSUM_START_TIMEOUT',
      )
        .argParser(integer(1))
        .default(COORDINATOR_DEFAULTS.startTimeoutMs),
    );
  addTrainingOptions(command);
  addPortOption(command, DEFAULT_COORDINATOR_PORT);
  addCheckpointOptions(command);
  addTokenOptions(command);
  addServerTlsOptions(command);
  command.addOption(
    booleanOption('--insecure', 'allow listening beyond loopback without a token', 'CALLOSUM_INSECURE'),
  );
  addJsonOption(command);
  command.action((flags: CoordinatorFlags) => {
    const settings = checkpointSettings(flags);
    const reported = { command, json: flags.json === true, runDir: settings.outDir, resume: settings.resume };
    return reportRun(reported, async ({ log, onStep, onEvaluation, signal }) => {
      const coordinator = await startCoordinator({
        host: flags.host,
        port: flags.port,
        minWorkers: flags.minWorkers,
        ...tokenSettings(flags),
        ...tlsSettings(flags),
        ...(flags.maxWorkers === undefined ? {} : { maxWorkers: flags.maxWorkers }),
        startTimeoutMs: flags.startTimeout,
        training: trainingConfigFrom(flags),
        ...settings,
        ...(flags.data === undefined ? {} : { dataDir: flags.data }),
        log,
        onStep,
        onEvaluation,
      });
      for (const url of advertisedUrls(coordinator.url))
        log(`coordinator: workers connect with: callosum worker --connect ${url}`);
      signal.addEventListener('abort', () => void coordinator.stop(String(signal.reason)), { once: true });
      return coordinator.result;
    });
  });
}

function tokenSettings(flags: CoordinatorFlags): { token?: string; insecure: boolean } {
  const token = tokenFrom(flags);
  return { ...(token === undefined ? {} : { token }), insecure: flags.insecure === true };
}

function tlsSettings(flags: CoordinatorFlags): { tls?: NonNullable<ReturnType<typeof serverTlsFrom>> } {
  const tls = serverTlsFrom(flags);
  return tls === undefined ? {} : { tls };
}
